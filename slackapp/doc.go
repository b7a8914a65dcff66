// Package slackapp is reins' Slack app: the building blocks of the approval
// door that do not depend on Temporal or the workflow.
//
//   - The co-signature request as a Block Kit message (ApprovalMessage,
//     UpdatedMessage), whose Approve and Deny buttons carry a ButtonValue
//     binding the click to one remediation, one step index and the digest of
//     the step the message showed.
//   - Notifier posts (chat.postMessage) and rewrites (chat.update) those
//     messages, waiting out Slack's rate limits.
//   - Directory maps a Slack user to an approver identity (users.info) and
//     answers group membership (usergroups.users.list), cached briefly.
//   - Verifier checks Slack's v0 request signature, its 5-minute window and
//     refuses replays; ParseForm and ParsePayload turn a verified body into an
//     Interaction, refusing anything but a click on reins' own buttons.
//   - Responder answers a click with an ephemeral reply through its
//     response_url.
//   - SocketRunner receives the same clicks over Socket Mode, for clusters
//     with no public endpoint.
//
// Everything an agent wrote (justification, explanation, names) is escaped
// before it reaches mrkdwn, so a plan cannot mention @channel, a user group
// or disguise a link; every text is cut to Slack's limits on a character
// boundary.
package slackapp

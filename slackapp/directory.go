package slackapp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/reins-dev/reins/remediation"
)

// DefaultMembershipTTL is how long a user group's members and a user's
// identity are cached.
const DefaultMembershipTTL = 30 * time.Second

// maxCached bounds the users and groups a Directory caches.
const maxCached = 10_000

// SourceSlack is the Approver.Source of approvals given in Slack.
const SourceSlack = "slack"

// Errors of Directory.
var (
	// ErrNotApprover: the Slack user cannot approve anything (deactivated,
	// a bot or an app, unknown).
	ErrNotApprover = errors.New("this Slack user cannot approve")
	// ErrUnknownGroup: a reins group with no Slack user group configured.
	ErrUnknownGroup = errors.New("approver group has no Slack user group")
)

// DirectoryOptions configures NewDirectory.
type DirectoryOptions struct {
	// Groups maps reins approver groups to Slack (only Usergroup is used).
	Groups map[string]Group
	// TTL is how long answers are cached. Default DefaultMembershipTTL.
	TTL time.Duration
	// RateLimitWaits bounds the waits on 429 per call. Default
	// DefaultRateLimitWaits.
	RateLimitWaits int
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Directory says who a Slack user is and which approver groups they belong
// to. Safe for concurrent use.
type Directory struct {
	api     *slack.Client
	opts    DirectoryOptions
	users   *ttlCache[remediation.Approver]
	members *ttlCache[map[string]bool]
}

// NewDirectory returns a Directory that asks Slack through api (a bot token
// with users:read, users:read.email and usergroups:read).
func NewDirectory(api *slack.Client, opts DirectoryOptions) (*Directory, error) {
	if api == nil {
		return nil, errors.New("slack directory: no Slack client (set slack.bot_token_file or REINS_SLACK_BOT_TOKEN)")
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultMembershipTTL
	}
	if opts.RateLimitWaits <= 0 {
		opts.RateLimitWaits = DefaultRateLimitWaits
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Directory{
		api:     api,
		opts:    opts,
		users:   newTTLCache[remediation.Approver](opts.TTL, maxCached, opts.Now),
		members: newTTLCache[map[string]bool](opts.TTL, maxCached, opts.Now),
	}, nil
}

// Lookup returns the approver identity of Slack user userID (users.info):
// ID is the profile's e-mail in lower case when Slack shares it, else the
// Slack user ID; Name is the real name. A deactivated user, a bot or an app
// is ErrNotApprover.
func (d *Directory) Lookup(ctx context.Context, userID string) (remediation.Approver, error) {
	if !userIDRE.MatchString(userID) {
		return remediation.Approver{}, fmt.Errorf("%w: %q is not a Slack user ID", ErrNotApprover, userID)
	}
	return d.users.get(ctx, userID, func(ctx context.Context) (remediation.Approver, error) {
		var u *slack.User
		err := withRateLimit(ctx, d.opts.RateLimitWaits, func() error {
			var err error
			u, err = d.api.GetUserInfoContext(ctx, userID, slack.GetUserInfoOptionIncludeLocale(false))
			return err
		})
		if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok && se.Err == "user_not_found" {
			return remediation.Approver{}, fmt.Errorf("%w: Slack knows no user %s", ErrNotApprover, userID)
		}
		if err != nil {
			return remediation.Approver{}, fmt.Errorf("slack users.info %s: %w", userID, err)
		}
		switch {
		case u.Deleted:
			return remediation.Approver{}, fmt.Errorf("%w: %s is deactivated", ErrNotApprover, userID)
		case u.IsBot || u.IsAppUser || userID == "USLACKBOT":
			return remediation.Approver{}, fmt.Errorf("%w: %s is a bot or an app", ErrNotApprover, userID)
		}
		// reins knows people by e-mail (clients, owners, requesters): an
		// approver Slack shares no e-mail of could not be told apart from
		// the requester or the agent's owner, so it is refused.
		email := strings.TrimSpace(u.Profile.Email)
		if email == "" {
			return remediation.Approver{}, fmt.Errorf("%w: Slack shares no e-mail address for %s, and reins knows approvers by e-mail (give the Slack app the users:read.email scope)", ErrNotApprover, userID)
		}
		a := remediation.Approver{ID: strings.ToLower(email), Source: SourceSlack}
		for _, n := range []string{u.RealName, u.Profile.RealName, u.Name} {
			if n = strings.TrimSpace(clean(n)); n != "" {
				a.Name = cut(n, maxName)
				break
			}
		}
		return a, nil
	})
}

// Usergroup returns the Slack user group of a reins approver group.
func (d *Directory) Usergroup(group string) (string, error) {
	g, ok := d.opts.Groups[group]
	if !ok || g.Usergroup == "" {
		return "", fmt.Errorf("%w: %q (set slack.groups.%s.usergroup to its Slack user group ID, S…)", ErrUnknownGroup, group, group)
	}
	return g.Usergroup, nil
}

// InGroup reports whether Slack user userID is a member of the Slack user
// group of reins group (usergroups.users.list). A group without a Slack user
// group is ErrUnknownGroup: nobody in Slack can approve for it.
func (d *Directory) InGroup(ctx context.Context, group, userID string) (bool, error) {
	ug, err := d.Usergroup(group)
	if err != nil {
		return false, err
	}
	members, err := d.members.get(ctx, ug, func(ctx context.Context) (map[string]bool, error) {
		var ids []string
		err := withRateLimit(ctx, d.opts.RateLimitWaits, func() error {
			var err error
			ids, err = d.api.GetUserGroupMembersContext(ctx, ug)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("slack usergroups.users.list %s (group %s): %w", ug, group, err)
		}
		set := make(map[string]bool, len(ids))
		for _, id := range ids {
			set[id] = true
		}
		return set, nil
	})
	if err != nil {
		return false, err
	}
	return members[userID], nil
}

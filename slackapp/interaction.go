package slackapp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"

	"github.com/reins-dev/reins/remediation"
)

// Interaction is one click on an Approve or Deny button, as Slack reported
// it. Everything in it comes from a request whose signature verified (HTTP)
// or from the Socket Mode connection; nothing in it is yet an approval: the
// user is still to be looked up and checked.
type Interaction struct {
	// UserID is the Slack user who clicked (U… or W…).
	UserID string
	// UserName is the user's handle as the payload gave it (display only).
	UserName string
	// TeamID is the user's workspace ("" when the payload has none).
	TeamID string
	// ActionID is ActionApprove or ActionDeny; Verdict what it stands for.
	ActionID string
	Verdict  remediation.Verdict
	// Button is what the clicked message showed.
	Button ButtonValue
	// ResponseURL answers the click (ephemeral replies).
	ResponseURL string
	// ChannelID and MessageTS are the message clicked.
	ChannelID string
	MessageTS string
	// ActionTS is when Slack saw the click.
	ActionTS string
}

// Errors of ParseForm and ParsePayload; each is wrapped with the detail.
var (
	// ErrMalformed: the body or payload is not what Slack sends.
	ErrMalformed = errors.New("malformed Slack interaction")
	// ErrUnsupported: a well-formed interaction reins does not handle (another
	// type, another action, several actions).
	ErrUnsupported = errors.New("unsupported Slack interaction")
)

// Bounds of a payload's fields.
const (
	maxResponseURL = 2048
	maxName        = 256
)

var (
	userIDRE = regexp.MustCompile(`^[UW][A-Z0-9]{2,31}$`)
	teamIDRE = regexp.MustCompile(`^[TE][A-Z0-9]{2,31}$`)
	// channelRE and tsRE check the optional message coordinates.
	channelRE = regexp.MustCompile(`^[CDGZ][A-Z0-9]{2,31}$`)
	tsRE      = regexp.MustCompile(`^[0-9]{1,12}(\.[0-9]{1,12})?$`)
)

// ParseForm reads an interaction request's body: an
// application/x-www-form-urlencoded form with one field, payload, holding the
// interaction's JSON. Verify the body's signature first.
func ParseForm(body []byte) (Interaction, error) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return Interaction{}, fmt.Errorf("%w: body is not a URL-encoded form: %v", ErrMalformed, err)
	}
	payloads := form["payload"]
	if len(payloads) != 1 {
		return Interaction{}, fmt.Errorf("%w: the form must have exactly one payload field, it has %d", ErrMalformed, len(payloads))
	}
	return ParsePayload([]byte(payloads[0]))
}

// payload is the part of Slack's block_actions payload reins reads.
type payload struct {
	Type string `json:"type"`
	User struct {
		ID       string `json:"id"`
		Username string `json:"username"`
		Name     string `json:"name"`
		TeamID   string `json:"team_id"`
	} `json:"user"`
	Team *struct {
		ID string `json:"id"`
	} `json:"team"`
	Channel *struct {
		ID string `json:"id"`
	} `json:"channel"`
	Container struct {
		Type      string `json:"type"`
		MessageTS string `json:"message_ts"`
		ChannelID string `json:"channel_id"`
	} `json:"container"`
	ResponseURL string `json:"response_url"`
	Actions     []struct {
		Type     string `json:"type"`
		ActionID string `json:"action_id"`
		BlockID  string `json:"block_id"`
		Value    string `json:"value"`
		ActionTS string `json:"action_ts"`
	} `json:"actions"`
}

// ParsePayload reads an interaction's JSON (the form's payload field, or a
// Socket Mode envelope's payload). Only a block_actions click on one of
// reins' buttons, by a Slack user, with a response_url, is accepted; anything
// else is an error wrapping ErrMalformed or ErrUnsupported that says what
// was wrong.
func ParsePayload(data []byte) (Interaction, error) {
	var p payload
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&p); err != nil {
		return Interaction{}, fmt.Errorf("%w: payload is not a JSON object of the expected shape: %v", ErrMalformed, err)
	}
	if dec.More() {
		return Interaction{}, fmt.Errorf("%w: payload has data after its JSON object", ErrMalformed)
	}
	if p.Type != "block_actions" {
		return Interaction{}, fmt.Errorf("%w: interaction type %.40q; reins handles only clicks on its buttons (block_actions)", ErrUnsupported, p.Type)
	}
	if len(p.Actions) != 1 {
		return Interaction{}, fmt.Errorf("%w: a click carries exactly one action, this one %d", ErrUnsupported, len(p.Actions))
	}
	a := p.Actions[0]
	verdict, ok := VerdictOf(a.ActionID)
	if !ok {
		return Interaction{}, fmt.Errorf("%w: action %.60q is not reins' %s or %s", ErrUnsupported, a.ActionID, ActionApprove, ActionDeny)
	}
	if a.Type != "button" {
		return Interaction{}, fmt.Errorf("%w: action %s is a %.40q, not a button", ErrMalformed, a.ActionID, a.Type)
	}
	value, err := ParseButtonValue(a.Value)
	if err != nil {
		return Interaction{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !userIDRE.MatchString(p.User.ID) {
		return Interaction{}, fmt.Errorf("%w: user.id %.40q is not a Slack user ID", ErrMalformed, p.User.ID)
	}
	in := Interaction{
		UserID:   p.User.ID,
		ActionID: a.ActionID,
		Verdict:  verdict,
		Button:   value,
		ActionTS: a.ActionTS,
	}
	in.UserName = p.User.Username
	if in.UserName == "" {
		in.UserName = p.User.Name
	}
	if len(in.UserName) > maxName {
		return Interaction{}, fmt.Errorf("%w: user.username is longer than %d bytes", ErrMalformed, maxName)
	}
	in.TeamID = p.User.TeamID
	if p.Team != nil && p.Team.ID != "" {
		if in.TeamID != "" && in.TeamID != p.Team.ID {
			return Interaction{}, fmt.Errorf("%w: user.team_id %.40q and team.id %.40q differ", ErrMalformed, in.TeamID, p.Team.ID)
		}
		in.TeamID = p.Team.ID
	}
	if in.TeamID != "" && !teamIDRE.MatchString(in.TeamID) {
		return Interaction{}, fmt.Errorf("%w: team %.40q is not a Slack team ID", ErrMalformed, in.TeamID)
	}
	if err := checkResponseURL(p.ResponseURL); err != nil {
		return Interaction{}, err
	}
	in.ResponseURL = p.ResponseURL
	in.ChannelID = p.Container.ChannelID
	if in.ChannelID == "" && p.Channel != nil {
		in.ChannelID = p.Channel.ID
	}
	if in.ChannelID != "" && !channelRE.MatchString(in.ChannelID) {
		return Interaction{}, fmt.Errorf("%w: channel %.40q is not a Slack channel ID", ErrMalformed, in.ChannelID)
	}
	in.MessageTS = p.Container.MessageTS
	if in.MessageTS != "" && !tsRE.MatchString(in.MessageTS) {
		return Interaction{}, fmt.Errorf("%w: container.message_ts %.40q is not a message timestamp", ErrMalformed, in.MessageTS)
	}
	if in.ActionTS != "" && !tsRE.MatchString(in.ActionTS) {
		return Interaction{}, fmt.Errorf("%w: action_ts %.40q is not a timestamp", ErrMalformed, in.ActionTS)
	}
	return in, nil
}

// checkResponseURL requires an absolute http(s) URL with a host; which hosts
// are answered is the Responder's choice.
func checkResponseURL(s string) error {
	if s == "" {
		return fmt.Errorf("%w: response_url is missing", ErrMalformed)
	}
	if len(s) > maxResponseURL {
		return fmt.Errorf("%w: response_url is longer than %d bytes", ErrMalformed, maxResponseURL)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%w: response_url is not an absolute http(s) URL", ErrMalformed)
	}
	return nil
}

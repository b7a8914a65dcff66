package workers

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/reins-dev/reins/activities"
	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/slackapp"
)

// Environment variables holding the Slack app's secrets; each overrides its
// file in the slack section.
const (
	EnvSlackBotToken      = "REINS_SLACK_BOT_TOKEN"
	EnvSlackSigningSecret = "REINS_SLACK_SIGNING_SECRET"
	EnvSlackAppToken      = "REINS_SLACK_APP_TOKEN"
)

// Slack modes: how the gateway receives clicks.
const (
	// SlackModeHTTP: Slack posts clicks to the gateway's
	// /slack/interactions (the app's Interactivity Request URL).
	SlackModeHTTP = "http"
	// SlackModeSocket: the gateway opens a Socket Mode WebSocket to Slack;
	// no public endpoint is needed.
	SlackModeSocket = "socket"
)

// slackHTTPTimeout bounds each call to Slack's Web API.
const slackHTTPTimeout = 15 * time.Second

// maxMembershipTTL bounds slack.membership_ttl: someone removed from a user
// group must not keep approving for long.
const maxMembershipTTL = 5 * time.Minute

// SlackConfig configures the Slack approval door: workers post co-signature
// requests with the bot token; the gateway receives the clicks (HTTP with
// the signing secret, or Socket Mode with the app token). Slack is off when
// there is no bot token. No secret is a value of this struct: they are read
// from their files or environment variables when a client is built.
//
//	slack:
//	  mode: http                      # or socket
//	  bot_token_file: /run/secrets/slack-bot-token          # xoxb-…
//	  signing_secret_file: /run/secrets/slack-signing-secret
//	  default_channel: C0123ONCALL
//	  groups:
//	    oncall-sre: {usergroup: S0123SRE, channel: C0123SRE}
//	    sre-leads:  {usergroup: S0456LEADS}
type SlackConfig struct {
	// Mode is "http" (default) or "socket".
	Mode string `json:"mode"`
	// BotTokenFile holds the bot token (xoxb-…; scopes chat:write,
	// users:read, users:read.email, usergroups:read). $REINS_SLACK_BOT_TOKEN.
	BotTokenFile string `json:"bot_token_file"`
	// SigningSecretFile holds the app's signing secret, which verifies
	// clicks in http mode. $REINS_SLACK_SIGNING_SECRET.
	SigningSecretFile string `json:"signing_secret_file"`
	// AppTokenFile holds the app-level token (xapp-…, connections:write)
	// of socket mode. $REINS_SLACK_APP_TOKEN.
	AppTokenFile string `json:"app_token_file"`
	// APIURL is Slack's Web API. Default https://slack.com/api/.
	APIURL string `json:"api_url"`
	// DefaultChannel receives the requests of groups without a channel.
	DefaultChannel string `json:"default_channel"`
	// Groups maps each reins approver group (the policy's group and
	// escalation group) to its Slack user group and channel.
	Groups map[string]SlackGroupConfig `json:"groups"`
	// MembershipTTL is how long user-group members and user identities are
	// cached. Default 30s, at most 5m.
	MembershipTTL Duration `json:"membership_ttl"`
	// TeamID, when set, is the only Slack workspace (T…) whose clicks count.
	TeamID string `json:"team_id"`
	// ResponseURLPrefixes are where ephemeral replies may go. Default
	// Slack's hooks (https://hooks.slack.com/, https://hooks.slack-gov.com/).
	ResponseURLPrefixes []string `json:"response_url_prefixes"`
}

// SlackGroupConfig is where one approver group lives in Slack.
type SlackGroupConfig struct {
	// Usergroup is the Slack user group ID (S…) whose members may co-sign
	// for the group; messages mention it. Required.
	Usergroup string `json:"usergroup"`
	// Channel receives the group's requests (ID such as C0123, or #name).
	// Default: slack.default_channel.
	Channel string `json:"channel"`
}

var (
	slackUsergroupRE = regexp.MustCompile(`^S[A-Z0-9]{2,31}$`)
	slackTeamRE      = regexp.MustCompile(`^[TE][A-Z0-9]{2,31}$`)
	slackChannelRE   = regexp.MustCompile(`^(#[a-z0-9._-]{1,80}|[CGD][A-Z0-9]{2,31})$`)
)

// Enabled reports whether Slack is configured: a bot token file or
// $REINS_SLACK_BOT_TOKEN.
func (c SlackConfig) Enabled() bool {
	return c.BotTokenFile != "" || os.Getenv(EnvSlackBotToken) != ""
}

// mode is the effective mode.
func (c SlackConfig) mode() string {
	if c.Mode == "" {
		return SlackModeHTTP
	}
	return c.Mode
}

// validate names every bad field.
func (c SlackConfig) validate() []error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config slack.%s: "+format, append([]any{field}, args...)...))
	}
	switch c.Mode {
	case "", SlackModeHTTP, SlackModeSocket:
	default:
		bad("mode", "is %q: use %q (Slack posts clicks to /slack/interactions) or %q (Socket Mode, no public endpoint)", c.Mode, SlackModeHTTP, SlackModeSocket)
	}
	if !c.Enabled() {
		if c.Mode != "" || c.SigningSecretFile != "" || c.AppTokenFile != "" || c.DefaultChannel != "" || len(c.Groups) > 0 {
			bad("bot_token_file", "is not set (nor %s): the slack section needs the bot token (xoxb-…), or remove the section to approve with `reins approve` only", EnvSlackBotToken)
		}
		return errs
	}
	if c.Mode == SlackModeSocket && c.AppTokenFile == "" && os.Getenv(EnvSlackAppToken) == "" {
		bad("app_token_file", "is required with mode socket (or set %s): an app-level token (xapp-…) with connections:write", EnvSlackAppToken)
	}
	if c.APIURL != "" {
		if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("api_url", "is %q: an absolute URL such as %q", c.APIURL, slack.APIURL)
		}
	}
	if c.DefaultChannel == "" && len(c.Groups) == 0 {
		bad("default_channel", "is not set and there are no slack.groups: set the channel co-signature requests go to, and the groups' user groups")
	}
	if c.DefaultChannel != "" && !slackChannelRE.MatchString(c.DefaultChannel) {
		bad("default_channel", "is %q: a channel ID (C0123ABC) or #name", c.DefaultChannel)
	}
	for name, g := range c.Groups {
		field := "groups." + name
		if strings.TrimSpace(name) == "" {
			bad("groups", "has an empty group name: keys are the approver groups policies name")
		}
		if !slackUsergroupRE.MatchString(g.Usergroup) {
			bad(field+".usergroup", "is %q: the ID (S…) of the Slack user group whose members may co-sign for %s (Slack: People → User groups → Copy group ID)", g.Usergroup, name)
		}
		if g.Channel != "" && !slackChannelRE.MatchString(g.Channel) {
			bad(field+".channel", "is %q: a channel ID (C0123ABC) or #name", g.Channel)
		}
		if g.Channel == "" && c.DefaultChannel == "" {
			bad(field+".channel", "is not set and there is no slack.default_channel: set one, so that %s's requests have somewhere to go", name)
		}
	}
	if c.MembershipTTL < 0 || time.Duration(c.MembershipTTL) > maxMembershipTTL {
		bad("membership_ttl", "is %s: between 0 (default %s) and %s, so that who left a group stops approving soon", time.Duration(c.MembershipTTL), slackapp.DefaultMembershipTTL, maxMembershipTTL)
	}
	if c.TeamID != "" && !slackTeamRE.MatchString(c.TeamID) {
		bad("team_id", "is %q: a Slack workspace ID (T…) or enterprise ID (E…)", c.TeamID)
	}
	if len(c.ResponseURLPrefixes) > 0 {
		if _, err := slackapp.NewResponder(slackapp.ResponderOptions{URLPrefixes: c.ResponseURLPrefixes}); err != nil {
			bad("response_url_prefixes", "%v", err)
		}
	}
	return errs
}

// secret reads a secret from env, else from file; field names the file's
// config field for errors. It never returns the secret in an error.
func secret(env, file, field string) (string, error) {
	if v := strings.TrimSpace(os.Getenv(env)); v != "" {
		return v, nil
	}
	if file == "" {
		return "", fmt.Errorf("config slack.%s is not set (or set %s)", field, env)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("config slack.%s: %w", field, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("config slack.%s: %s is empty", field, file)
	}
	return v, nil
}

// BotToken reads the bot token: $REINS_SLACK_BOT_TOKEN, else the file.
func (c SlackConfig) BotToken() (string, error) {
	t, err := secret(EnvSlackBotToken, c.BotTokenFile, "bot_token_file")
	if err == nil && !strings.HasPrefix(t, "xoxb-") {
		return "", fmt.Errorf("config slack.bot_token_file (or %s): not a bot token: it starts with xoxb- (OAuth & Permissions → Bot User OAuth Token)", EnvSlackBotToken)
	}
	return t, err
}

// SigningSecret reads the signing secret: $REINS_SLACK_SIGNING_SECRET, else the file.
func (c SlackConfig) SigningSecret() (string, error) {
	return secret(EnvSlackSigningSecret, c.SigningSecretFile, "signing_secret_file")
}

// AppToken reads the app-level token: $REINS_SLACK_APP_TOKEN, else the file.
func (c SlackConfig) AppToken() (string, error) {
	t, err := secret(EnvSlackAppToken, c.AppTokenFile, "app_token_file")
	if err == nil && !strings.HasPrefix(t, "xapp-") {
		return "", fmt.Errorf("config slack.app_token_file (or %s): not an app-level token: it starts with xapp- (Basic Information → App-Level Tokens)", EnvSlackAppToken)
	}
	return t, err
}

// client builds a Web API client with the bot token (and the app token, for
// Socket Mode).
func (c SlackConfig) client(opts ...slack.Option) (*slack.Client, error) {
	token, err := c.BotToken()
	if err != nil {
		return nil, err
	}
	api := slack.APIURL
	if c.APIURL != "" {
		api = strings.TrimRight(c.APIURL, "/") + "/"
	}
	opts = append([]slack.Option{slack.OptionAPIURL(api), slack.OptionHTTPClient(&http.Client{Timeout: slackHTTPTimeout})}, opts...)
	return slack.New(token, opts...), nil
}

func (c SlackConfig) groups() map[string]slackapp.Group {
	out := make(map[string]slackapp.Group, len(c.Groups))
	for name, g := range c.Groups {
		out[name] = slackapp.Group{Usergroup: g.Usergroup, Channel: g.Channel}
	}
	return out
}

// Notifier builds the poster of co-signature requests (workers).
func (c SlackConfig) Notifier() (*slackapp.Notifier, error) {
	api, err := c.client()
	if err != nil {
		return nil, err
	}
	return slackapp.NewNotifier(api, slackapp.NotifierOptions{Groups: c.groups(), DefaultChannel: c.DefaultChannel})
}

// Directory builds the user and group lookups (gateway).
func (c SlackConfig) Directory() (*slackapp.Directory, error) {
	api, err := c.client()
	if err != nil {
		return nil, err
	}
	return slackapp.NewDirectory(api, slackapp.DirectoryOptions{Groups: c.groups(), TTL: time.Duration(c.MembershipTTL)})
}

// Verifier builds the signature check of HTTP clicks (gateway, http mode).
func (c SlackConfig) Verifier() (*slackapp.Verifier, error) {
	s, err := c.SigningSecret()
	if err != nil {
		return nil, err
	}
	v, err := slackapp.NewVerifier(s, slackapp.VerifierOptions{})
	if err != nil {
		return nil, fmt.Errorf("config slack.signing_secret_file (or %s): %w", EnvSlackSigningSecret, err)
	}
	return v, nil
}

// Responder builds the ephemeral replies (gateway).
func (c SlackConfig) Responder() (*slackapp.Responder, error) {
	r, err := slackapp.NewResponder(slackapp.ResponderOptions{URLPrefixes: c.ResponseURLPrefixes})
	if err != nil {
		return nil, fmt.Errorf("config slack.response_url_prefixes: %w", err)
	}
	return r, nil
}

// SocketRunner builds the Socket Mode receiver (gateway, socket mode) that
// hands clicks to door.
func (c SlackConfig) SocketRunner(door *gateway.Slack, logger *slog.Logger) (*slackapp.SocketRunner, error) {
	app, err := c.AppToken()
	if err != nil {
		return nil, err
	}
	api, err := c.client(slack.OptionAppLevelToken(app))
	if err != nil {
		return nil, err
	}
	return slackapp.NewSocketRunner(api, slackapp.SocketOptions{Dispatch: door.DispatchSocket, Rejected: door.Rejected, Logger: logger})
}

// SlackActivity builds the worker's Slack activities: without Slack they
// post nothing and tell approvers to use `reins approve`.
func (c Config) SlackActivity() (*activities.Slack, error) {
	a := &activities.Slack{TemporalUI: c.TemporalUI}
	if !c.Slack.Enabled() {
		return a, nil
	}
	n, err := c.Slack.Notifier()
	if err != nil {
		return nil, err
	}
	a.Notifier = n
	return a, nil
}

// SlackDoor builds the gateway's Slack door on desk and rec. In http mode
// mount the door on gateway.SlackInteractionsPattern (runner is nil); in
// socket mode run the runner beside the gateway (the door's HTTP endpoint
// then refuses everything and need not be mounted). Call door.Shutdown
// when the gateway stops. Without Slack it returns an error: check
// Slack.Enabled first.
func (c Config) SlackDoor(desk gateway.Decider, rec *gateway.Recorder, logger *slog.Logger) (door *gateway.Slack, runner *slackapp.SocketRunner, err error) {
	s := c.Slack
	if !s.Enabled() {
		return nil, nil, errors.New("config slack.bot_token_file is not set (nor " + EnvSlackBotToken + "): Slack is off")
	}
	dir, err := s.Directory()
	if err != nil {
		return nil, nil, err
	}
	resp, err := s.Responder()
	if err != nil {
		return nil, nil, err
	}
	opts := gateway.SlackOptions{Directory: dir, Desk: desk, Responder: resp, Recorder: rec, TeamID: s.TeamID, Logger: logger}
	if s.mode() == SlackModeHTTP {
		if opts.Verifier, err = s.Verifier(); err != nil {
			return nil, nil, err
		}
	}
	if door, err = gateway.NewSlack(opts); err != nil {
		return nil, nil, err
	}
	if s.mode() == SlackModeSocket {
		if runner, err = s.SocketRunner(door, logger); err != nil {
			return nil, nil, err
		}
	}
	return door, runner, nil
}

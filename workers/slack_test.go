package workers

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reins-dev/reins/gateway"
	"github.com/reins-dev/reins/remediation"
)

func clearSlackEnv(t *testing.T) {
	t.Helper()
	for _, e := range []string{EnvSlackBotToken, EnvSlackSigningSecret, EnvSlackAppToken} {
		t.Setenv(e, "")
	}
}

func writeSecret(t *testing.T, v string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSlackConfigLoads(t *testing.T) {
	clearSlackEnv(t)
	t.Setenv(EnvConfig, "")
	bot := writeSecret(t, "xoxb-1-2-abc")
	path := filepath.Join(t.TempDir(), "reins.yaml")
	yaml := "slack:\n  mode: socket\n  bot_token_file: " + bot + "\n  app_token_file: /run/app\n  default_channel: C0ONCALL\n" +
		"  membership_ttl: 1m\n  team_id: T0ACME\n  groups:\n    oncall-sre: {usergroup: S0SRE, channel: C0SRE}\n    sre-leads: {usergroup: S0LEADS}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Slack
	if !s.Enabled() || s.mode() != SlackModeSocket || s.Groups["oncall-sre"].Channel != "C0SRE" || s.Groups["sre-leads"].Usergroup != "S0LEADS" || s.TeamID != "T0ACME" {
		t.Fatalf("slack config %+v", s)
	}
	if tok, err := s.BotToken(); err != nil || tok != "xoxb-1-2-abc" {
		t.Fatalf("bot token: %v", err)
	}
	// The config never carries a secret: marshalled, it shows file names only.
	b, _ := json.Marshal(s)
	if strings.Contains(string(b), "xoxb-1-2-abc") {
		t.Fatalf("the config shows the token: %s", b)
	}
	if DefaultConfig().Slack.Enabled() {
		t.Fatal("Slack is on by default")
	}
}

func TestSlackConfigNamesEachBadField(t *testing.T) {
	clearSlackEnv(t)
	cfg := DefaultConfig()
	cfg.Slack = SlackConfig{
		Mode:                "websocket",
		BotTokenFile:        "/run/bot",
		APIURL:              "slack.com/api",
		DefaultChannel:      "oncall channel",
		Groups:              map[string]SlackGroupConfig{"sre": {Usergroup: "sre-team", Channel: "C 1"}},
		MembershipTTL:       Duration(10 * time.Minute),
		TeamID:              "acme",
		ResponseURLPrefixes: []string{"https://hooks.slack.com"},
	}
	err := cfg.Validate()
	for _, field := range []string{"slack.mode", "slack.api_url", "slack.default_channel", "slack.groups.sre.usergroup", "slack.groups.sre.channel",
		"slack.membership_ttl", "slack.team_id", "slack.response_url_prefixes"} {
		if err == nil || !strings.Contains(err.Error(), "config "+field+":") {
			t.Errorf("%s not named in: %v", field, err)
		}
	}
	// Socket mode needs the app token; a group needs somewhere to post.
	cfg.Slack = SlackConfig{Mode: SlackModeSocket, BotTokenFile: "/run/bot", Groups: map[string]SlackGroupConfig{"sre": {Usergroup: "S0SRE"}}}
	err = cfg.Validate()
	for _, field := range []string{"slack.app_token_file", "slack.groups.sre.channel"} {
		if err == nil || !strings.Contains(err.Error(), "config "+field+":") {
			t.Errorf("%s not named in: %v", field, err)
		}
	}
	t.Setenv(EnvSlackAppToken, "xapp-1")
	cfg.Slack.DefaultChannel = "#oncall"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("socket mode with the app token from the environment: %v", err)
	}
	// A bot token with nowhere to post.
	cfg.Slack = SlackConfig{BotTokenFile: "/run/bot"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "config slack.default_channel:") {
		t.Fatalf("slack without a channel: %v", err)
	}
	// A slack section without a bot token is a mistake, not silence.
	cfg.Slack = SlackConfig{DefaultChannel: "C0ONCALL"}
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "config slack.bot_token_file:") {
		t.Fatalf("slack without a bot token: %v", err)
	}
}

func TestSlackSecrets(t *testing.T) {
	clearSlackEnv(t)
	s := SlackConfig{BotTokenFile: writeSecret(t, "xapp-wrong-kind"), AppTokenFile: writeSecret(t, "xoxb-wrong-kind"), SigningSecretFile: writeSecret(t, "short")}
	if _, err := s.BotToken(); err == nil || strings.Contains(err.Error(), "wrong-kind") {
		t.Errorf("an app token as bot token: %v", err)
	}
	if _, err := s.AppToken(); err == nil || strings.Contains(err.Error(), "wrong-kind") {
		t.Errorf("a bot token as app token: %v", err)
	}
	if _, err := s.Verifier(); err == nil || !strings.Contains(err.Error(), "signing_secret_file") || strings.Contains(err.Error(), "short") {
		t.Errorf("a short signing secret: %v", err)
	}
	t.Setenv(EnvSlackBotToken, "xoxb-from-env")
	t.Setenv(EnvSlackSigningSecret, "0123456789abcdef0123456789abcdef")
	if tok, err := s.BotToken(); err != nil || tok != "xoxb-from-env" {
		t.Errorf("env bot token: %q %v", tok, err)
	}
	if _, err := s.Verifier(); err != nil {
		t.Errorf("env signing secret: %v", err)
	}
	if _, err := (SlackConfig{}).SigningSecret(); err != nil {
		t.Errorf("signing secret from env only: %v", err)
	}
	t.Setenv(EnvSlackSigningSecret, "")
	if _, err := (SlackConfig{}).SigningSecret(); err == nil || !strings.Contains(err.Error(), EnvSlackSigningSecret) {
		t.Errorf("no signing secret: %v", err)
	}
	if _, err := (SlackConfig{SigningSecretFile: "/nonexistent/secret"}).SigningSecret(); err == nil {
		t.Error("a missing secret file was read")
	}
}

// Without Slack the activity has no notifier at all (not a typed nil).
func TestSlackActivityAndDoor(t *testing.T) {
	clearSlackEnv(t)
	cfg := DefaultConfig()
	a, err := cfg.SlackActivity()
	if err != nil || a.Notifier != nil || a.TemporalUI != cfg.TemporalUI {
		t.Fatalf("activity without Slack: %+v %v", a, err)
	}
	if _, _, err := cfg.SlackDoor(nil, nil, nil); err == nil {
		t.Fatal("a door without Slack")
	}
	cfg.Slack = SlackConfig{BotTokenFile: writeSecret(t, "xoxb-1"), SigningSecretFile: writeSecret(t, "0123456789abcdef0123456789abcdef"), DefaultChannel: "C0ONCALL"}
	if a, err = cfg.SlackActivity(); err != nil || a.Notifier == nil {
		t.Fatalf("activity with Slack: %+v %v", a, err)
	}
	rec, err := gateway.NewRecorder([]gateway.AuditSink{nopSink{}}, "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	door, runner, err := cfg.SlackDoor(nopDesk{}, rec, nil)
	if err != nil || door == nil || runner != nil {
		t.Fatalf("http door: %v %v %v", door, runner, err)
	}
	_ = door.Shutdown(context.Background())
	cfg.Slack.Mode, cfg.Slack.AppTokenFile = SlackModeSocket, writeSecret(t, "xapp-1")
	door, runner, err = cfg.SlackDoor(nopDesk{}, rec, nil)
	if err != nil || door == nil || runner == nil {
		t.Fatalf("socket door: %v %v %v", door, runner, err)
	}
	_ = door.Shutdown(context.Background())
}

type nopSink struct{}

func (nopSink) Name() string { return "nop" }
func (nopSink) Store(context.Context, remediation.AuditRecord, []byte) (bool, error) {
	return false, nil
}

type nopDesk struct{}

func (nopDesk) Decide(context.Context, gateway.Vote) (gateway.DeskResult, error) {
	return gateway.DeskResult{}, nil
}

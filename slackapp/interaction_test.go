package slackapp

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// click is a block_actions payload as Slack sends it for a click on a
// button of a message (trimmed of the message it carries).
func click(mut ...func(map[string]any)) map[string]any {
	value, _ := ButtonValue{Remediation: "reins-am-1", Run: testRun, Step: 1, Digest: testDigest}.Encode()
	p := map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": "U012ABCDEF", "username": "alice", "name": "alice", "team_id": "T0123ABC"},
		"api_app_id":   "A0123",
		"token":        "legacy-verification-token",
		"container":    map[string]any{"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0123ABC", "is_ephemeral": false},
		"trigger_id":   "1.2.3",
		"team":         map[string]any{"id": "T0123ABC", "domain": "example"},
		"channel":      map[string]any{"id": "C0123ABC", "name": "oncall"},
		"message":      map[string]any{"type": "message", "ts": "1700000000.000100", "text": "co-signature needed"},
		"response_url": "https://hooks.slack.com/actions/T0123ABC/1/abc",
		"actions": []any{map[string]any{
			"action_id": ActionApprove, "block_id": BlockDecide, "type": "button", "value": value,
			"text": map[string]any{"type": "plain_text", "text": "Approve"}, "style": "primary", "action_ts": "1700000001.000200",
		}},
	}
	for _, m := range mut {
		m(p)
	}
	return p
}

func form(p map[string]any) []byte {
	b, _ := json.Marshal(p)
	return []byte(url.Values{"payload": {string(b)}}.Encode())
}

func action(p map[string]any) map[string]any { return p["actions"].([]any)[0].(map[string]any) }

func TestParseClick(t *testing.T) {
	in, err := ParseForm(form(click()))
	if err != nil {
		t.Fatal(err)
	}
	want := Interaction{
		UserID: "U012ABCDEF", UserName: "alice", TeamID: "T0123ABC", ActionID: ActionApprove, Verdict: "approve",
		Button:      ButtonValue{Remediation: "reins-am-1", Run: testRun, Step: 1, Digest: testDigest},
		ResponseURL: "https://hooks.slack.com/actions/T0123ABC/1/abc", ChannelID: "C0123ABC",
		MessageTS: "1700000000.000100", ActionTS: "1700000001.000200",
	}
	if in != want {
		t.Fatalf("got %+v\nwant %+v", in, want)
	}
	deny, err := ParseForm(form(click(func(p map[string]any) { action(p)["action_id"] = ActionDeny })))
	if err != nil || deny.Verdict != "deny" {
		t.Fatalf("deny: %+v %v", deny, err)
	}
	// A payload without the optional team, channel and timestamps.
	bare, err := ParsePayload([]byte(`{"type":"block_actions","user":{"id":"W0AB"},"response_url":"https://hooks.slack.com/x",
		"actions":[{"type":"button","action_id":"reins.deny","value":"r1|0|` + testDigest + `|x"}]}`))
	if err != nil || bare.UserID != "W0AB" || bare.Button.Remediation != "x" {
		t.Fatalf("bare: %+v %v", bare, err)
	}
}

func TestParseRefuses(t *testing.T) {
	cases := map[string]struct {
		body []byte
		want error
	}{
		"not a form":         {[]byte("payload=%zz"), ErrMalformed},
		"no payload":         {[]byte("foo=bar"), ErrMalformed},
		"two payloads":       {[]byte(string(form(click())) + "&" + string(form(click()))), ErrMalformed},
		"not JSON":           {[]byte("payload=nope"), ErrMalformed},
		"JSON array":         {[]byte("payload=%5B%5D"), ErrMalformed},
		"trailing data":      {[]byte(url.Values{"payload": {`{"type":"block_actions"} {}`}}.Encode()), ErrMalformed},
		"view submission":    {form(click(func(p map[string]any) { p["type"] = "view_submission" })), ErrUnsupported},
		"legacy message":     {form(click(func(p map[string]any) { p["type"] = "interactive_message" })), ErrUnsupported},
		"no action":          {form(click(func(p map[string]any) { p["actions"] = []any{} })), ErrUnsupported},
		"two actions":        {form(click(func(p map[string]any) { p["actions"] = append(p["actions"].([]any), action(p)) })), ErrUnsupported},
		"other action":       {form(click(func(p map[string]any) { action(p)["action_id"] = "other.approve" })), ErrUnsupported},
		"select, not button": {form(click(func(p map[string]any) { action(p)["type"] = "static_select" })), ErrMalformed},
		"bad value":          {form(click(func(p map[string]any) { action(p)["value"] = "r1|0|abc|x" })), ErrMalformed},
		"no user":            {form(click(func(p map[string]any) { delete(p, "user") })), ErrMalformed},
		"bot user id":        {form(click(func(p map[string]any) { p["user"].(map[string]any)["id"] = "B0123" })), ErrMalformed},
		"lowercase user id":  {form(click(func(p map[string]any) { p["user"].(map[string]any)["id"] = "u0123" })), ErrMalformed},
		"user id as number":  {form(click(func(p map[string]any) { p["user"].(map[string]any)["id"] = 7 })), ErrMalformed},
		"teams differ":       {form(click(func(p map[string]any) { p["team"].(map[string]any)["id"] = "T999" })), ErrMalformed},
		"bad team":           {form(click(func(p map[string]any) { p["user"].(map[string]any)["team_id"] = "x"; delete(p, "team") })), ErrMalformed},
		"no response_url":    {form(click(func(p map[string]any) { delete(p, "response_url") })), ErrMalformed},
		"relative url":       {form(click(func(p map[string]any) { p["response_url"] = "/actions/1" })), ErrMalformed},
		"file url":           {form(click(func(p map[string]any) { p["response_url"] = "file:///etc/passwd" })), ErrMalformed},
		"url with user":      {form(click(func(p map[string]any) { p["response_url"] = "https://a@hooks.slack.com/x" })), ErrMalformed},
		"long url":           {form(click(func(p map[string]any) { p["response_url"] = "https://hooks.slack.com/" + strings.Repeat("a", 2048) })), ErrMalformed},
		"bad channel":        {form(click(func(p map[string]any) { p["container"].(map[string]any)["channel_id"] = "#oncall" })), ErrMalformed},
		"bad message ts":     {form(click(func(p map[string]any) { p["container"].(map[string]any)["message_ts"] = "soon" })), ErrMalformed},
		"bad action ts":      {form(click(func(p map[string]any) { action(p)["action_ts"] = "1e9" })), ErrMalformed},
		"long user name":     {form(click(func(p map[string]any) { p["user"].(map[string]any)["username"] = strings.Repeat("a", 300) })), ErrMalformed},
	}
	for name, c := range cases {
		in, err := ParseForm(c.body)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %+v, %v; want %v", name, in, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hooks.slack.com/actions") {
			t.Errorf("%s: the error shows the response_url", name)
		}
	}
}

func FuzzParseInteraction(f *testing.F) {
	f.Add(form(click()))
	f.Add(form(click(func(p map[string]any) { action(p)["action_id"] = ActionDeny })))
	f.Add(form(click(func(p map[string]any) { delete(p, "team"); delete(p, "channel") })))
	f.Add(form(click(func(p map[string]any) { p["type"] = "view_submission" })))
	f.Add(form(click(func(p map[string]any) { action(p)["value"] = "r1|7|" + testDigest + "|a/b:c" })))
	f.Add([]byte("payload=%7B%22type%22%3A%22block_actions%22%7D"))
	f.Add([]byte("payload=&payload="))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := ParseForm(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error of unknown kind: %v", err)
			}
			return
		}
		// Whatever is accepted is a click on reins' buttons, by a user, on a
		// value reins could have written, with somewhere to answer.
		verdict, ok := VerdictOf(in.ActionID)
		if !ok || verdict != in.Verdict {
			t.Fatalf("accepted action %q verdict %q", in.ActionID, in.Verdict)
		}
		if !userIDRE.MatchString(in.UserID) {
			t.Fatalf("accepted user %q", in.UserID)
		}
		v, err := in.Button.Encode()
		if err != nil {
			t.Fatalf("accepted button %+v: %v", in.Button, err)
		}
		if back, err := ParseButtonValue(v); err != nil || back != in.Button {
			t.Fatalf("button %+v does not round-trip: %+v %v", in.Button, back, err)
		}
		if err := checkResponseURL(in.ResponseURL); err != nil {
			t.Fatalf("accepted response_url: %v", err)
		}
		if len(in.UserName) > maxName {
			t.Fatalf("accepted user name of %d bytes", len(in.UserName))
		}
	})
}

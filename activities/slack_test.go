package activities

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/reins-dev/reins/remediation"
	"github.com/reins-dev/reins/slackapp"
)

type recordingNotifier struct {
	posts    []remediation.ApprovalRequest
	postOpts []slackapp.PostOptions
	updates  []remediation.UpdateApprovalInput
	urls     []string
	err      error
}

func (n *recordingNotifier) Post(_ context.Context, req remediation.ApprovalRequest, opts slackapp.PostOptions) (slackapp.Posted, error) {
	n.posts, n.postOpts, n.urls = append(n.posts, req), append(n.postOpts, opts), append(n.urls, opts.WorkflowURL)
	return slackapp.Posted{Message: remediation.ApprovalMessage{Channel: "C0SRE", TS: "1.2"}}, n.err
}

func (n *recordingNotifier) Update(_ context.Context, in remediation.UpdateApprovalInput, workflowURL string) error {
	n.updates, n.urls = append(n.updates, in), append(n.urls, workflowURL)
	return n.err
}

var _ SlackNotifier = (*recordingNotifier)(nil)

func slackEnv(s *Slack) *testsuite.TestActivityEnvironment {
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(s.NotifyApprovers, activity.RegisterOptions{Name: remediation.ActivityNotifyApprovers})
	env.RegisterActivityWithOptions(s.UpdateApprovalMessage, activity.RegisterOptions{Name: remediation.ActivityUpdateApprovalMessage})
	return env
}

func slackRequest() remediation.ApprovalRequest {
	return remediation.ApprovalRequest{
		StepRef: remediation.StepRef{Remediation: "reins-am-1", Index: 2,
			Step: remediation.Step{Action: remediation.ActionCordon, Target: remediation.Target{Kind: "Node", Name: "n-17"}}},
		Steps: 3, Digest: strings.Repeat("ab", 32), Group: "sre", Needed: 1,
	}
}

func TestSlackNotifyApprovers(t *testing.T) {
	n := &recordingNotifier{}
	env := slackEnv(&Slack{Notifier: n, TemporalUI: "http://localhost:8233/"})
	v, err := env.ExecuteActivity(remediation.ActivityNotifyApprovers, slackRequest())
	if err != nil {
		t.Fatal(err)
	}
	var res remediation.NotifyApproversResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 1 || res.Messages[0] != (remediation.ApprovalMessage{Channel: "C0SRE", TS: "1.2"}) || res.Note != "" {
		t.Fatalf("result %+v", res)
	}
	if len(n.posts) != 1 || n.posts[0].Digest != slackRequest().Digest {
		t.Fatalf("posted %+v", n.posts)
	}
	// The test environment's namespace and workflow ID.
	if n.urls[0] != "http://localhost:8233/namespaces/default-test-namespace/workflows/default-test-workflow-id" {
		t.Fatalf("workflow URL %q", n.urls[0])
	}
	// The message carries a key that is the same on every attempt (run and
	// activity ID); a first attempt has no earlier message to look for.
	if o := n.postOpts[0]; o.Key != "default-test-run-id/0" || !o.FindSince.IsZero() {
		t.Fatalf("post options %+v, want key default-test-run-id/0 and no search", o)
	}

	in := remediation.UpdateApprovalInput{Request: slackRequest(), Messages: res.Messages, Decided: true, Outcome: "expired"}
	if _, err := env.ExecuteActivity(remediation.ActivityUpdateApprovalMessage, in); err != nil {
		t.Fatal(err)
	}
	if len(n.updates) != 1 || !n.updates[0].Decided || n.updates[0].Messages[0].TS != "1.2" {
		t.Fatalf("updates %+v", n.updates)
	}
	// Nothing posted: nothing to update.
	if _, err := env.ExecuteActivity(remediation.ActivityUpdateApprovalMessage, remediation.UpdateApprovalInput{Request: slackRequest()}); err != nil || len(n.updates) != 1 {
		t.Fatalf("update without messages: %v, %d updates", err, len(n.updates))
	}
}

func TestSlackNotConfigured(t *testing.T) {
	env := slackEnv(&Slack{})
	v, err := env.ExecuteActivity(remediation.ActivityNotifyApprovers, slackRequest())
	if err != nil {
		t.Fatal(err)
	}
	var res remediation.NotifyApproversResult
	if err := v.Get(&res); err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 0 || !strings.Contains(res.Note, "reins approve reins-am-1 --step 2") {
		t.Fatalf("result %+v", res)
	}
	in := remediation.UpdateApprovalInput{Request: slackRequest(), Messages: []remediation.ApprovalMessage{{Channel: "C", TS: "1"}}}
	if _, err := env.ExecuteActivity(remediation.ActivityUpdateApprovalMessage, in); err != nil {
		t.Fatalf("update without Slack: %v", err)
	}
}

// Errors retrying cannot fix are final; the others retry.
func TestSlackErrors(t *testing.T) {
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			code := map[string]string{"C0GONE": "channel_not_found", "C0OUT": "not_in_channel", "C0BAD": "invalid_auth"}[r.PostForm.Get("channel")]
			if code == "" {
				code = "internal_error"
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": code})
		})
	})
	srv.Start()
	defer srv.Stop()
	api := slack.New("xoxb-test", slack.OptionAPIURL(srv.GetAPIURL()))
	for channel, final := range map[string]bool{"C0GONE": true, "C0OUT": true, "C0BAD": true, "C0FLAKY": false} {
		n, err := slackapp.NewNotifier(api, slackapp.NotifierOptions{DefaultChannel: channel})
		if err != nil {
			t.Fatal(err)
		}
		_, err = slackEnv(&Slack{Notifier: n}).ExecuteActivity(remediation.ActivityNotifyApprovers, slackRequest())
		var appErr *temporal.ApplicationError
		if !errors.As(err, &appErr) {
			t.Fatalf("%s: %v", channel, err)
		}
		if appErr.NonRetryable() != final || (final && appErr.Type() != ErrSlackRejected) {
			t.Errorf("%s: non-retryable %v type %q, want final %v: %v", channel, appErr.NonRetryable(), appErr.Type(), final, err)
		}
	}
	n := &recordingNotifier{err: slack.SlackErrorResponse{Err: "message_not_found"}}
	in := remediation.UpdateApprovalInput{Request: slackRequest(), Messages: []remediation.ApprovalMessage{{Channel: "C", TS: "1"}}}
	_, err := slackEnv(&Slack{Notifier: n}).ExecuteActivity(remediation.ActivityUpdateApprovalMessage, in)
	var appErr *temporal.ApplicationError
	if !errors.As(err, &appErr) || !appErr.NonRetryable() {
		t.Fatalf("update of a deleted message: %v", err)
	}
}

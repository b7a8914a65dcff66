package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/reins-dev/reins/remediation"
)

// Activity options. Every one sets StartToCloseTimeout; retries back off;
// errors that retrying cannot fix are non-retryable by type.

func finalErrors() []string {
	return []string{
		remediation.ErrForbidden, remediation.ErrInvalid, remediation.ErrNotFound,
		remediation.ErrTargetChanged, remediation.ErrVerification,
	}
}

func retry(attempts int32) *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:        time.Second,
		BackoffCoefficient:     2,
		MaximumInterval:        30 * time.Second,
		MaximumAttempts:        attempts,
		NonRetryableErrorTypes: finalErrors(),
	}
}

func withActivity(ctx workflow.Context, o workflow.ActivityOptions) workflow.Context {
	return workflow.WithActivityOptions(ctx, o)
}

func policyOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: retry(3), Summary: summary}
}

func readOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, RetryPolicy: retry(5), Summary: summary}
}

// writeOptions: a write retries on conflicts, throttling, 5xx and timeouts
// (the action is idempotent), never on Forbidden or Invalid.
func writeOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{StartToCloseTimeout: time.Minute, RetryPolicy: retry(6), Summary: summary}
}

func verifyOptions(summary string, timeout time.Duration) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: timeout + 30*time.Second,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy:         retry(3),
		Summary:             summary,
	}
}

// compensateOptions retry longer than a step: giving up means a human must act.
func compensateOptions(summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        8,
			NonRetryableErrorTypes: []string{remediation.ErrForbidden, remediation.ErrInvalid, remediation.ErrTargetChanged},
		},
		Summary: summary,
	}
}

package activities

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"go.temporal.io/sdk/temporal"

	"github.com/reins-dev/reins/remediation"
)

// kubeError classifies a Kubernetes API error for Temporal: Forbidden,
// Unauthorized, Invalid, BadRequest and NotFound are final (non-retryable,
// typed); conflicts, throttling, timeouts and 5xx are returned as they are and
// retried by the activity's retry policy. op names what failed.
func kubeError(op string, err error) error {
	if err == nil {
		return nil
	}
	wrapped := fmt.Errorf("%s: %w", op, err)
	switch {
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return temporal.NewNonRetryableApplicationError(wrapped.Error()+" (the step's credential may not do this; check its Role)", remediation.ErrForbidden, err)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return temporal.NewNonRetryableApplicationError(wrapped.Error(), remediation.ErrInvalid, err)
	case apierrors.IsNotFound(err):
		return temporal.NewNonRetryableApplicationError(wrapped.Error(), remediation.ErrNotFound, err)
	}
	return wrapped
}

// final returns a non-retryable error of the given type.
func final(errType, format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), errType, nil)
}

// withLease returns err carrying lease as its details, so that the workflow
// records the credential a failed step or undo minted. An application error
// keeps its message, type, retryability and cause; any other error becomes a
// retryable application error with its text, as Temporal would have made it.
// A cancellation, or a failure without a lease, is returned as it is.
func withLease(err error, lease *remediation.LeaseInfo) error {
	if err == nil || lease == nil || lease.LeaseID == "" {
		return err
	}
	if appErr, ok := err.(*temporal.ApplicationError); ok {
		return temporal.NewApplicationErrorWithOptions(appErr.Message(), appErr.Type(), temporal.ApplicationErrorOptions{
			NonRetryable: appErr.NonRetryable(), Cause: appErr.Unwrap(), Details: []any{*lease}})
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || temporal.IsCanceledError(err) {
		return err
	}
	return temporal.NewApplicationErrorWithOptions(err.Error(), "", temporal.ApplicationErrorOptions{Details: []any{*lease}})
}

// errUnsupported is returned for an action/kind pair validation should have refused.
var errUnsupported = errors.New("unsupported action for this kind")

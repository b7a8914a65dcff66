package activities

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/reins-dev/reins/remediation"
)

func TestWithLease(t *testing.T) {
	lease := &remediation.LeaseInfo{LeaseID: "kubernetes/creds/reins-prod/l1", Role: "reins-prod", Namespace: "shop", Revoked: true}
	carried := func(err error) (*temporal.ApplicationError, remediation.LeaseInfo) {
		t.Helper()
		var appErr *temporal.ApplicationError
		var got remediation.LeaseInfo
		if !errors.As(err, &appErr) || appErr.Details(&got) != nil || got != *lease {
			t.Fatalf("%v carries %+v, want %+v", err, got, *lease)
		}
		return appErr, got
	}

	// A final error keeps its message, type, retryability and cause.
	cause := errors.New("patch refused")
	fin := temporal.NewNonRetryableApplicationError("patch nodes/n1", remediation.ErrForbidden, cause)
	appErr, _ := carried(withLease(fin, lease))
	if appErr.Error() != fin.Error() || appErr.Type() != remediation.ErrForbidden || !appErr.NonRetryable() || !errors.Is(appErr, cause) {
		t.Errorf("final error became %v (type %s, non-retryable %v)", appErr, appErr.Type(), appErr.NonRetryable())
	}

	// Any other error stays retryable, with its text.
	plain := fmt.Errorf("patch nodes/n1: %w", errors.New("connection reset"))
	appErr, _ = carried(withLease(plain, lease))
	if appErr.Message() != plain.Error() || appErr.NonRetryable() {
		t.Errorf("plain error became %v (non-retryable %v)", appErr, appErr.NonRetryable())
	}

	// Returned as they are: no error, no lease, a cancellation.
	for name, c := range map[string]struct {
		err   error
		lease *remediation.LeaseInfo
	}{
		"no error":       {nil, lease},
		"no lease":       {plain, nil},
		"empty lease":    {plain, &remediation.LeaseInfo{}},
		"cancelled":      {fmt.Errorf("patch: %w", context.Canceled), lease},
		"deadline":       {context.DeadlineExceeded, lease},
		"temporal abort": {temporal.NewCanceledError(), lease},
	} {
		if got := withLease(c.err, c.lease); got != c.err {
			t.Errorf("%s: %v became %v", name, c.err, got)
		}
	}
}

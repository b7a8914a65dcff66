package slackapp

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/reins-dev/reins/remediation"
)

// Action IDs of the message's buttons, and the block that holds them.
const (
	ActionApprove = "reins.approve"
	ActionDeny    = "reins.deny"
	BlockDecide   = "reins.decide"
)

// VerdictOf returns the verdict a button's action ID stands for.
func VerdictOf(actionID string) (remediation.Verdict, bool) {
	switch actionID {
	case ActionApprove:
		return remediation.VerdictApprove, true
	case ActionDeny:
		return remediation.VerdictDeny, true
	}
	return "", false
}

// Limits of a ButtonValue.
const (
	// MaxRemediationID bounds the remediation ID a button carries; Slack
	// allows 2000 characters in a button's value.
	MaxRemediationID = 1000
	// buttonPrefix versions the value's format.
	buttonPrefix = "r1"
)

var (
	// remediationRE is the workflow IDs reins uses (plan IDs and the IDs
	// derived from incidents).
	remediationRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]*$`)
	digestRE      = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ButtonValue binds a click to what the message showed: the remediation
// (workflow ID), the step's index and the step's digest. It travels as the
// button's value: "r1|<step>|<digest>|<remediation>".
type ButtonValue struct {
	Remediation string
	Step        int
	Digest      string
}

// ErrBadButtonValue: a button value that is not one reins wrote.
var ErrBadButtonValue = errors.New("button value is not a reins approval button")

// Encode returns the button's value, or an error when v cannot be carried
// (an ID reins does not use, a step out of range, a digest that is not a
// SHA-256 in hex).
func (v ButtonValue) Encode() (string, error) {
	if err := v.validate(); err != nil {
		return "", err
	}
	return buttonPrefix + "|" + strconv.Itoa(v.Step) + "|" + v.Digest + "|" + v.Remediation, nil
}

// ParseButtonValue reads a value Encode wrote.
func ParseButtonValue(s string) (ButtonValue, error) {
	parts := strings.SplitN(s, "|", 4)
	if len(parts) != 4 || parts[0] != buttonPrefix {
		return ButtonValue{}, fmt.Errorf("%w: want %s|<step>|<digest>|<remediation>", ErrBadButtonValue, buttonPrefix)
	}
	step, err := strconv.Atoi(parts[1])
	if err != nil || parts[1] != strconv.Itoa(step) {
		return ButtonValue{}, fmt.Errorf("%w: step %.12q is not a step index", ErrBadButtonValue, parts[1])
	}
	v := ButtonValue{Remediation: parts[3], Step: step, Digest: parts[2]}
	if err := v.validate(); err != nil {
		return ButtonValue{}, err
	}
	return v, nil
}

func (v ButtonValue) validate() error {
	switch {
	case v.Step < 0 || v.Step >= remediation.MaxSteps:
		return fmt.Errorf("%w: step %d is outside 0..%d", ErrBadButtonValue, v.Step, remediation.MaxSteps-1)
	case !digestRE.MatchString(v.Digest):
		return fmt.Errorf("%w: the step digest is not 64 lowercase hex digits", ErrBadButtonValue)
	case len(v.Remediation) > MaxRemediationID || !remediationRE.MatchString(v.Remediation):
		return fmt.Errorf("%w: remediation ID must be at most %d letters, digits and . _ : / -", ErrBadButtonValue, MaxRemediationID)
	}
	return nil
}

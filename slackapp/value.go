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
	// buttonPrefix versions the value's format: r2 carries the run; r1,
	// on messages posted before, does not.
	buttonPrefix, buttonPrefixV1 = "r2", "r1"
)

var (
	// remediationRE is the workflow IDs reins uses (plan IDs and the IDs
	// derived from incidents).
	remediationRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]*$`)
	digestRE      = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// runRE is Temporal's run IDs (UUIDs).
	runRE = regexp.MustCompile(`^[0-9A-Za-z-]{1,64}$`)
)

// ButtonValue binds a click to what the message showed: the remediation
// (workflow ID) and its run, the step's index and the step's digest. It
// travels as the button's value: "r2|<step>|<digest>|<run>|<remediation>".
type ButtonValue struct {
	Remediation string
	// Run is the workflow run that posted the message ("" on a message
	// posted before buttons carried it).
	Run    string
	Step   int
	Digest string
}

// ErrBadButtonValue: a button value that is not one reins wrote.
var ErrBadButtonValue = errors.New("button value is not a reins approval button")

// Encode returns the button's value, or an error when v cannot be carried
// (an ID reins does not use, a step out of range, a digest that is not a
// SHA-256 in hex, a run that is not a run ID). Without a run (a request a
// workflow made before requests carried it) it writes the r1 format.
func (v ButtonValue) Encode() (string, error) {
	if err := v.validate(); err != nil {
		return "", err
	}
	if v.Run == "" {
		return buttonPrefixV1 + "|" + strconv.Itoa(v.Step) + "|" + v.Digest + "|" + v.Remediation, nil
	}
	if !runRE.MatchString(v.Run) {
		return "", fmt.Errorf("%w: run %.70q is not a workflow run ID", ErrBadButtonValue, v.Run)
	}
	return buttonPrefix + "|" + strconv.Itoa(v.Step) + "|" + v.Digest + "|" + v.Run + "|" + v.Remediation, nil
}

// ParseButtonValue reads a value Encode wrote (or the r1 format, without
// the run, of messages posted before).
func ParseButtonValue(s string) (ButtonValue, error) {
	var parts []string
	var run string
	switch {
	case strings.HasPrefix(s, buttonPrefix+"|"):
		parts = strings.SplitN(s, "|", 5)
		if len(parts) != 5 || !runRE.MatchString(parts[3]) {
			return ButtonValue{}, fmt.Errorf("%w: want %s|<step>|<digest>|<run>|<remediation>", ErrBadButtonValue, buttonPrefix)
		}
		run = parts[3]
		parts = append(parts[:3], parts[4])
	case strings.HasPrefix(s, buttonPrefixV1+"|"):
		parts = strings.SplitN(s, "|", 4)
	}
	if len(parts) != 4 {
		return ButtonValue{}, fmt.Errorf("%w: want %s|<step>|<digest>|<run>|<remediation>", ErrBadButtonValue, buttonPrefix)
	}
	step, err := strconv.Atoi(parts[1])
	if err != nil || parts[1] != strconv.Itoa(step) {
		return ButtonValue{}, fmt.Errorf("%w: step %.12q is not a step index", ErrBadButtonValue, parts[1])
	}
	v := ButtonValue{Remediation: parts[3], Run: run, Step: step, Digest: parts[2]}
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

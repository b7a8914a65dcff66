package remediation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
)

// Decode reads one JSON plan from r strictly: at most MaxPlanBytes, no unknown
// fields, no trailing data. It does not validate; call Plan.Validate.
func Decode(r io.Reader) (Plan, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxPlanBytes+1))
	if err != nil {
		return Plan{}, fmt.Errorf("read plan: %w", err)
	}
	return DecodeBytes(data)
}

// DecodeBytes is Decode over a byte slice.
func DecodeBytes(data []byte) (Plan, error) {
	if len(data) > MaxPlanBytes {
		return Plan{}, &ValidationError{Errors: []FieldError{{
			Field: "plan", Message: fmt.Sprintf("is larger than %d bytes; split it into smaller plans", MaxPlanBytes)}}}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		fe := jsonFieldError(err)
		if step, ok := stepFieldError(data); ok {
			fe = step
		}
		return Plan{}, &ValidationError{Errors: []FieldError{fe}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Plan{}, &ValidationError{Errors: []FieldError{{
			Field: "plan", Message: "has data after the JSON object; send exactly one plan"}}}
	}
	return p, nil
}

// stepFieldError finds the first step of data that does not decode, and
// returns its error with the step's index in the field ("steps[1].params.
// replicas"): encoding/json names the field of a list element without its
// index. ok is false when every step decodes (the error is elsewhere) or
// data has no list of steps.
func stepFieldError(data []byte) (FieldError, bool) {
	var shape struct {
		Steps []json.RawMessage `json:"steps"`
	}
	if json.Unmarshal(data, &shape) != nil {
		return FieldError{}, false
	}
	for i, raw := range shape.Steps {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var s Step
		if err := dec.Decode(&s); err != nil {
			fe := jsonFieldError(err)
			if fe.Field == "plan" {
				fe.Field = ""
			}
			fe.Field = strings.TrimSuffix(fmt.Sprintf("steps[%d].%s", i, fe.Field), ".")
			return fe, true
		}
	}
	return FieldError{}, false
}

// jsonFieldError turns an encoding/json error into a FieldError naming the field.
func jsonFieldError(err error) FieldError {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "plan"
		}
		if isInt(typeErr.Type.Kind()) && strings.HasPrefix(typeErr.Value, "number") && typeErr.Type.Bits() < 64 {
			// A whole number too large for the field, or a fraction.
			return FieldError{Field: field, Message: fmt.Sprintf("must be a whole number of at most %d, got %s", int64(1)<<(typeErr.Type.Bits()-1)-1, strings.TrimPrefix(typeErr.Value, "number "))}
		}
		return FieldError{Field: field, Message: fmt.Sprintf("must be a %s, got a JSON %s", jsonType(typeErr.Type.Kind().String()), typeErr.Value)}
	case errors.As(err, &syntaxErr):
		return FieldError{Field: "plan", Message: fmt.Sprintf("is not valid JSON at byte %d: %v", syntaxErr.Offset, err)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return FieldError{Field: "plan", Message: "is empty or cut short; send one JSON object"}
	}
	// encoding/json reports unknown fields as: json: unknown field "x"
	const unknown = "json: unknown field "
	if msg := err.Error(); len(msg) > len(unknown) && msg[:len(unknown)] == unknown {
		return FieldError{Field: msg[len(unknown):], Message: "is not a plan field; remove it (see the plan reference in the README)"}
	}
	return FieldError{Field: "plan", Message: err.Error()}
}

func isInt(k reflect.Kind) bool {
	return k >= reflect.Int && k <= reflect.Int64
}

func jsonType(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "whole number"
	case "float32", "float64":
		return "number"
	case "slice", "array":
		return "list"
	case "struct", "map":
		return "object"
	case "bool":
		return "boolean"
	}
	return kind
}

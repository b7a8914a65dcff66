package audit

import (
	"encoding/json"
	"fmt"

	"github.com/reins-dev/reins/remediation"
)

// Problem kinds, from Verify.
const (
	// ProblemAltered: the record's content does not hash to its id, or it is
	// not a well-formed record.
	ProblemAltered = "altered"
	// ProblemBroken: the record's prev is not the id of the record before it
	// (that record was replaced, or this one forged).
	ProblemBroken = "broken"
	// ProblemMissing: a sequence number is absent.
	ProblemMissing = "missing"
	// ProblemReordered: a record comes before one it should follow.
	ProblemReordered = "reordered"
	// ProblemDuplicate: the same record appears twice.
	ProblemDuplicate = "duplicate"
	// ProblemAfterEnd: a record follows the remediation's end record.
	ProblemAfterEnd = "after-end"
	// ProblemOpen: the chain has no end record (the remediation is running,
	// or its last records are missing).
	ProblemOpen = "open"
	// ProblemEmpty: no record at all.
	ProblemEmpty = "empty"
)

// Problem is the first thing wrong with a chain.
type Problem struct {
	Kind string `json:"kind"`
	// Position is the 1-based place in the sink's order where it was found.
	Position int `json:"position"`
	// Seq and ID name the record (for a missing one, the seq it should have
	// had and, when the next record says it, its id).
	Seq     int64  `json:"seq"`
	ID      string `json:"id,omitempty"`
	Message string `json:"message"`
}

func (p *Problem) Error() string { return p.Message }

// Report is what Verify found.
type Report struct {
	Subject string `json:"remediation"`
	Run     string `json:"run"`
	Records int    `json:"records"`
	// LastID is the id of the last record in order (the chain's head).
	LastID string `json:"last_id,omitempty"`
	// End is the final state in the end record; empty when there is none.
	End remediation.State `json:"end,omitempty"`
	// Types lists the records' types in order.
	Types []string `json:"types"`
	// Problem is the first problem; nil when the chain is intact.
	Problem *Problem `json:"problem,omitempty"`
}

// OK reports an intact chain that ends with an end record.
func (r Report) OK() bool { return r.Problem == nil }

func (r Report) String() string {
	if r.Problem != nil {
		return fmt.Sprintf("remediation %s run %s: audit chain FAILED after %d intact record(s): %s", r.Subject, r.Run, r.Records, r.Problem.Message)
	}
	return fmt.Sprintf("remediation %s run %s: audit chain OK: %d records, #1..#%d linked, ends %s (head %s)", r.Subject, r.Run, r.Records, r.Records, r.End, short(r.LastID))
}

// VerifyRuns splits a remediation's records (as a sink holds them, every
// run) by run and verifies each run's chain; run, when set, picks one.
func VerifyRuns(subject, run string, records [][]byte, allowOpen bool) []Report {
	order, byRun := SplitRuns(records)
	if run != "" {
		return []Report{Verify(subject, run, byRun[run], allowOpen)}
	}
	if len(order) == 0 {
		return []Report{Verify(subject, "", nil, allowOpen)}
	}
	out := make([]Report, 0, len(order))
	for _, r := range order {
		out = append(out, Verify(subject, r, byRun[r], allowOpen))
	}
	return out
}

// SplitRuns groups records by their runid, runs in order of first
// appearance. A record too damaged to name its run goes with the record
// before it.
func SplitRuns(records [][]byte) (order []string, byRun map[string][][]byte) {
	byRun = map[string][][]byte{}
	last := ""
	for _, raw := range records {
		_, _, run := looseSeqID(raw)
		if run == "" {
			run = last
		}
		if _, ok := byRun[run]; !ok {
			order = append(order, run)
		}
		byRun[run] = append(byRun[run], raw)
		last = run
	}
	return order, byRun
}

// Verify checks the chain of one run of remediation subject from records in
// the order a sink holds them: each record well-formed with its id its own
// hash, seq 1, 2, 3… in order, each prev the id of the record before it,
// and the last one the end record. It stops at the first problem. allowOpen
// accepts a chain without an end record (a remediation still running).
func Verify(subject, run string, records [][]byte, allowOpen bool) Report {
	rep := Report{Subject: subject, Run: run}
	parsed := make([]remediation.AuditRecord, len(records))
	errs := make([]error, len(records))
	for i, raw := range records {
		parsed[i], errs[i] = remediation.ParseAuditRecord(raw)
	}
	fail := func(p Problem) Report {
		rep.Problem = &p
		return rep
	}
	var prev remediation.AuditRecord
	seen := map[int64]string{}
	for i, rec := range parsed {
		pos := i + 1
		if errs[i] != nil {
			seq, id, _ := looseSeqID(records[i])
			return fail(Problem{Kind: ProblemAltered, Position: pos, Seq: seq, ID: id,
				Message: fmt.Sprintf("record at position %d (#%d, id %s) is altered or malformed: %v", pos, seq, short(id), errs[i])})
		}
		if rec.Subject != subject || rec.RunID != run {
			return fail(Problem{Kind: ProblemAltered, Position: pos, Seq: rec.Seq, ID: rec.ID,
				Message: fmt.Sprintf("record %s at position %d belongs to remediation %q run %q", rec.Label(), pos, rec.Subject, rec.RunID)})
		}
		if prev.Type == remediation.AuditEnded {
			return fail(Problem{Kind: ProblemAfterEnd, Position: pos, Seq: rec.Seq, ID: rec.ID,
				Message: fmt.Sprintf("record %s at position %d follows the end record %s", rec.Label(), pos, prev.Label())})
		}
		want := prev.Seq + 1
		switch {
		case rec.Seq < want && seen[rec.Seq] == rec.ID:
			return fail(Problem{Kind: ProblemDuplicate, Position: pos, Seq: rec.Seq, ID: rec.ID,
				Message: fmt.Sprintf("record %s appears again at position %d", rec.Label(), pos)})
		case rec.Seq < want:
			return fail(Problem{Kind: ProblemReordered, Position: pos, Seq: rec.Seq, ID: rec.ID,
				Message: fmt.Sprintf("record %s is out of order: it comes at position %d, after #%d", rec.Label(), pos, prev.Seq)})
		case rec.Seq > want:
			if later := indexOfSeq(parsed[i+1:], want); later >= 0 {
				return fail(Problem{Kind: ProblemReordered, Position: pos, Seq: rec.Seq, ID: rec.ID,
					Message: fmt.Sprintf("record %s is out of order: it comes at position %d, before #%d (at position %d)", rec.Label(), pos, want, pos+1+later)})
			}
			p := Problem{Kind: ProblemMissing, Position: pos, Seq: want,
				Message: fmt.Sprintf("record #%d is missing: %s follows #%d", want, rec.Label(), prev.Seq)}
			if rec.Seq == want+1 {
				p.ID = rec.Prev
				p.Message = fmt.Sprintf("record #%d (id %s) is missing: %s follows #%d", want, short(rec.Prev), rec.Label(), prev.Seq)
			}
			if want == 1 {
				p.Message = fmt.Sprintf("record #1 is missing: the chain starts with %s", rec.Label())
			}
			return fail(p)
		}
		if rec.Prev != prev.ID {
			return fail(Problem{Kind: ProblemBroken, Position: pos - 1, Seq: prev.Seq, ID: prev.ID,
				Message: fmt.Sprintf("the chain breaks at %s: the next record %s says #%d has id %s (the record was replaced, or the next one forged)",
					prev.Label(), rec.Label(), prev.Seq, short(rec.Prev))})
		}
		seen[rec.Seq] = rec.ID
		rep.Records++
		rep.LastID = rec.ID
		rep.Types = append(rep.Types, rec.Type)
		prev = rec
	}
	switch {
	case len(parsed) == 0:
		return fail(Problem{Kind: ProblemEmpty, Message: fmt.Sprintf("no audit records for remediation %q", subject)})
	case prev.Type == remediation.AuditEnded:
		var end remediation.AuditEndedData
		if err := json.Unmarshal(prev.Data, &end); err != nil {
			return fail(Problem{Kind: ProblemAltered, Position: len(parsed), Seq: prev.Seq, ID: prev.ID,
				Message: fmt.Sprintf("end record %s has unreadable data: %v", prev.Label(), err)})
		}
		rep.End = end.State
	case !allowOpen:
		return fail(Problem{Kind: ProblemOpen, Position: len(parsed) + 1, Seq: prev.Seq + 1,
			Message: fmt.Sprintf("the chain has no end record: record #%d and later are missing, or the remediation is still running (then use --allow-open); last is %s", prev.Seq+1, prev.Label())})
	}
	return rep
}

func indexOfSeq(recs []remediation.AuditRecord, seq int64) int {
	for i, r := range recs {
		if r.Seq == seq {
			return i
		}
	}
	return -1
}

// looseSeqID reads seq, id and run from a record that may not verify, to name it.
func looseSeqID(raw []byte) (int64, string, string) {
	var v struct {
		ID    string `json:"id"`
		Seq   int64  `json:"seq"`
		RunID string `json:"runid"`
	}
	_ = json.Unmarshal(raw, &v)
	return v.Seq, v.ID, v.RunID
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

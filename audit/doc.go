// Package audit stores reins' audit records and reads them back.
//
// A record (remediation.AuditRecord) is built by the workflow and delivered,
// byte for byte, by the reins.audit.Record activity to every configured
// sink:
//
//   - NATS: a JetStream stream (default REINS_AUDIT, created with deny-delete
//     and deny-purge if missing). A remediation's records go to the subject
//     <prefix>.<remediation ID>.<run ID> (see SubjectToken) and are published with
//     Nats-Msg-Id = record id and an expected last sequence per subject, so a
//     retry is deduplicated and the chain cannot interleave. Before
//     publishing, the sink also looks at the subject's last record, which
//     keeps a retry idempotent after the duplicate window.
//   - File: an append-only JSON-lines file, one record per line, written
//     under an exclusive flock and fsynced before the delivery counts. The
//     sink indexes the ids already in the file (scanning only what other
//     writers appended since), so a record is never written twice. A torn
//     last line (a crash mid-write) is cut off: its record is delivered again
//     by the activity's retry.
//   - Webhook: an HTTP POST of the record (CloudEvents structured mode,
//     application/cloudevents+json) with Idempotency-Key = record id, for a
//     SIEM. 2xx means stored, 409 means already stored. It cannot be read back.
//
// Verify checks a chain read back from NATS or the file and names the first
// record that is altered, missing, reordered or duplicated.
package audit

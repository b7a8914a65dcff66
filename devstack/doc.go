// Package devstack starts real local components on loopback for `reins dev`
// and the integration tests: a Temporal dev server, a Kubernetes control plane
// (etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok for
// simulated nodes and pods), a Vault dev server, and NATS with JetStream (the
// audit stream; embedded in this process rather than a child, since
// nats-server is a Go library).
//
// The programs are not built here: scripts/setup.sh builds them into
// ~/.cache/reins/bin (REINS_BIN overrides), and FindBinary finds them there or
// on PATH.
//
// Rules every Start function keeps:
//   - Everything listens on 127.0.0.1, on ports chosen free at start.
//   - Everything a component writes (data, certificates, kubeconfig, logs) goes
//     under its options' Dir; nothing outside Dir is written or removed. When
//     Dir is empty a temporary folder is made and Stop removes it.
//   - Each child runs in its own process group and, on Linux, is killed by the
//     kernel if the process that started it dies. Cancelling the ctx given to
//     Start, or calling Stop, stops the whole group: SIGTERM, then SIGKILL after
//     the grace period, and waits for the exit.
//   - Readiness is a condition that is polled (health endpoints, client calls)
//     within a deadline, never a fixed sleep. A child that exits early or never
//     becomes ready fails the start with the tail of its log.
package devstack

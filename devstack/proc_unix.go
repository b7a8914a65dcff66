//go:build unix && !linux

package devstack

import "syscall"

// sysProcAttr puts the child in its own process group. Outside Linux there is
// no parent-death signal: Stop or cancelling the start context must run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

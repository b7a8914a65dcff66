package devstack

import "syscall"

// sysProcAttr puts the child in its own process group and asks the kernel to
// SIGKILL it when the parent goes away. Pdeathsig follows the OS thread that
// forked the child; the Go runtime keeps its threads alive unless a goroutine
// that locked one exits, which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

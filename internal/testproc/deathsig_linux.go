package testproc

import "syscall"

// dieWithTest makes the kernel kill the server when the test process dies, even when it dies
// without running its cleanups (a test timeout panics the whole binary).
func dieWithTest() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

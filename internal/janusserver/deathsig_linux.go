package janusserver

import "syscall"

// dieWithTest makes the kernel kill janus when the test process dies, even when it dies
// without running its cleanups (a test timeout panics the whole binary).
func dieWithTest() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

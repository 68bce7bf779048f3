//go:build !linux

package testproc

import "syscall"

// dieWithTest has no portable equivalent outside Linux: there, cleanups alone stop the server.
func dieWithTest() *syscall.SysProcAttr { return nil }

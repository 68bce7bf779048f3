// Package testproc starts the real servers the tests use (redis-server, turnserver, janus) as
// child processes that the kernel kills if the test process dies, and waits until they answer.
package testproc

import (
	"fmt"
	"os/exec"
	"time"
)

// Process is a server a test started.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd and polls ready every poll until it reports true. When the process exits
// first, or ready has not reported true within timeout (the process is then killed), the error
// names what (e.g. "redis-server on port 6380") and ends with logTail().
func Start(cmd *exec.Cmd, what string, timeout, poll time.Duration, ready func() bool, logTail func() string) (*Process, error) {
	cmd.SysProcAttr = dieWithTest()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", what, err)
	}
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(poll) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited: %s", what, logTail())
		default:
		}
		if ready() {
			return p, nil
		}
	}
	p.Stop()
	return nil, fmt.Errorf("%s did not answer within %v: %s", what, timeout, logTail())
}

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop kills the process and waits for it to exit. It may be called on a nil Process.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	p.Cmd.Process.Kill()
	<-p.done
}

package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Command is a process to start.
type Command struct {
	Path string   // the executable
	Args []string // its arguments, without the executable
	Dir  string   // its working directory
	Env  []string // added to this process's environment
	Log  string   // the file its output goes to, created anew
}

// Process is a started process. The caller kills it when done.
type Process struct {
	Cmd     *exec.Cmd
	Log     string // the file of its output
	Started time.Time
	exited  chan struct{}
	err     error // what Wait returned; set before exited is closed
}

// Start starts c.
func Start(c Command) (*Process, error) {
	f, err := os.Create(c.Log)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Dir, cmd.Env = c.Dir, append(os.Environ(), c.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", c.Path, err)
	}
	p := &Process{Cmd: cmd, Log: c.Log, Started: time.Now(), exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// Pid is the process's ID.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Running reports whether the process has not exited yet.
func (p *Process) Running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Err is what waiting for the process returned once it has exited (nil
// for a zero exit status), nil before.
func (p *Process) Err() error {
	if p.Running() {
		return nil
	}
	return p.err
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	if p.Running() {
		_ = p.Cmd.Process.Kill()
	}
	<-p.exited
}

// Stop sends SIGTERM and waits until the process exits, and returns its
// exit error; when ctx ends first, it kills the process.
func (p *Process) Stop(ctx context.Context) error {
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return p.err
	case <-ctx.Done():
		p.Kill()
		return fmt.Errorf("did not exit after SIGTERM: %w", ctx.Err())
	}
}

// Sleep waits d, then fails if ctx has ended or the process has exited,
// with the tail of its log in the error.
func (p *Process) Sleep(ctx context.Context, d time.Duration) error {
	err := Sleep(ctx, d)
	if err == nil && !p.Running() {
		err = fmt.Errorf("the process exited: %v", p.err)
	}
	if err != nil {
		return fmt.Errorf("%w\n--- log tail of %s ---\n%s", err, filepath.Base(p.Log), p.Tail(40))
	}
	return nil
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Memory returns the resident set size of a process and its peak, in
// bytes, from /proc/<pid>/status.
func Memory(pid int) (rss, peak int64, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	found := 0
	for line := range strings.Lines(string(status)) {
		field, value, _ := strings.Cut(line, ":")
		var dst *int64
		switch field {
		case "VmRSS":
			dst = &rss
		case "VmHWM":
			dst = &peak
		default:
			continue
		}
		f := strings.Fields(value)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("unexpected line %q in /proc/%d/status", strings.TrimSpace(line), pid)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		*dst = kb << 10
		found++
	}
	if found != 2 {
		return 0, 0, errors.New("no VmRSS and VmHWM in /proc/<pid>/status")
	}
	return rss, peak, nil
}

// CPUSeconds returns the user and system CPU time of a process, from
// /proc/<pid>/stat.
func CPUSeconds(pid int) (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which may hold spaces.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, stat)
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (utime + stime) / 100, nil // clock ticks; USER_HZ is 100 on Linux
}

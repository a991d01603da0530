package soak

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// startTimeout bounds the wait for the child server's start-up line.
const startTimeout = 30 * time.Second

// stopTimeout bounds the wait for the child server to exit after SIGTERM.
const stopTimeout = 60 * time.Second

// child is a server process the soak started: on 127.0.0.1, a free port,
// its own data directory and a random auth token, logging JSON.
type child struct {
	cmd     *exec.Cmd
	dataDir string
	url     *url.URL
	token   string
	exited  chan struct{}
	waitErr error

	mu         sync.Mutex
	errorLines []string // log lines at level ERROR, the first few
	errorCount int
	logTail    []string // the last lines, for a failed start
	tokenSeen  bool     // the token appeared in the log
}

const keepErrorLines = 10

// startChild runs bin with args on a new data directory under tmp.
func startChild(bin, tmp string, args []string) (*child, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp(tmp, "mantisdb-soak-")
	if err != nil {
		return nil, err
	}
	c := &child{dataDir: dataDir, token: hex.EncodeToString(raw[:]), exited: make(chan struct{})}
	full := append([]string{"--bind", "127.0.0.1", "--port", "0", "--resp-port", "-1", "--data-dir", dataDir + "/data",
		"--log-format", "json", "--log-level", "info"}, args...)
	c.cmd = exec.Command(bin, full...)
	c.cmd.Env = append(os.Environ(), "MANTISDB_AUTH_TOKEN="+c.token)
	// If the soak dies (a signal, a closed pipe), the server goes too.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		_ = os.RemoveAll(dataDir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	addr := make(chan string, 1)
	go c.readLog(stderr, addr)
	select {
	case a := <-addr:
		c.url = &url.URL{Scheme: "http", Host: a}
		return c, nil
	case <-c.exited:
		err = fmt.Errorf("%s exited at start-up (%v); its log:\n%s", bin, c.waitErr, c.tail())
	case <-time.After(startTimeout):
		err = fmt.Errorf("%s logged no start-up line within %v; its log:\n%s", bin, startTimeout, c.tail())
	}
	_ = c.kill()
	return nil, err
}

// readLog follows the server's JSON log: the listening address, error
// lines, and whether the token ever appears.
func (c *child) readLog(r io.Reader, addr chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		var rec struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
			Addr  string `json:"addr"`
		}
		_ = json.Unmarshal([]byte(line), &rec)
		c.mu.Lock()
		if strings.Contains(line, c.token) {
			c.tokenSeen = true
		}
		if rec.Level == "ERROR" {
			c.errorCount++
			if len(c.errorLines) < keepErrorLines {
				c.errorLines = append(c.errorLines, line)
			}
		}
		c.logTail = append(c.logTail, line)
		if len(c.logTail) > 20 {
			c.logTail = c.logTail[1:]
		}
		c.mu.Unlock()
		if rec.Msg == "mantisdb listening" {
			addr <- rec.Addr
		}
	}
	c.waitErr = c.cmd.Wait()
	close(c.exited)
}

func (c *child) tail() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.logTail, "\n")
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// logReport is what the server's log showed over the run.
type logReport struct {
	ErrorCount int      `json:"error_count"`
	ErrorLines []string `json:"error_lines,omitempty"`
	TokenSeen  bool     `json:"token_seen"`
}

func (c *child) logReport() logReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return logReport{ErrorCount: c.errorCount, ErrorLines: append([]string(nil), c.errorLines...), TokenSeen: c.tokenSeen}
}

// stop sends SIGTERM and waits for a clean exit.
func (c *child) stop() error {
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-c.exited:
	case <-time.After(stopTimeout):
		_ = c.kill()
		return fmt.Errorf("the server did not exit within %v of SIGTERM", stopTimeout)
	}
	if c.waitErr != nil {
		return fmt.Errorf("the server exited with %v; its log:\n%s", c.waitErr, c.tail())
	}
	return nil
}

// kill ends the process if it still runs; removing the data directory is
// the caller's.
func (c *child) kill() error {
	select {
	case <-c.exited:
		return nil
	default:
	}
	err := c.cmd.Process.Kill()
	select {
	case <-c.exited:
	case <-time.After(stopTimeout):
		return errors.Join(err, errors.New("the server did not exit after SIGKILL"))
	}
	return err
}

// remove deletes the data directory.
func (c *child) remove() error { return os.RemoveAll(c.dataDir) }

// dirBytes is the total size of the regular files under dir, as far as
// they can be read (files come and go while compaction runs).
func dirBytes(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	return total
}

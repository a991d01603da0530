//go:build linux

package resp

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The event loop's system calls on its non-blocking sockets and its epoll
// fd, made without telling the Go scheduler (RawSyscall). None of them can
// block: the sockets are non-blocking and epoll_wait is asked not to wait.
// A call through syscall.Syscall marks the goroutine's P as in a system
// call, and the runtime's monitor hands such a P to another thread once
// the call has lasted 20 us while other work waits, a hand-off that costs
// two thread wake-ups; on a busy two-core machine a loopback write is
// often that long, because it runs the receiving side's TCP as well. A
// raw call keeps the P, which is what a call that never waits deserves.

// rawRead is read(2) on a non-blocking fd.
func rawRead(fd int, p []byte) (int, error) { return rawIO(unix.SYS_READ, fd, p) }

// rawWrite is write(2) on a non-blocking fd.
func rawWrite(fd int, p []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, p) }

// rawIO is the system call trap (read or write) on fd and the bytes of p.
func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	var ptr unsafe.Pointer
	if len(p) > 0 {
		ptr = unsafe.Pointer(&p[0])
	}
	n, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(ptr), uintptr(len(p)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawEpollPoll is epoll_wait(2) with a zero timeout: the events ready now.
// epoll_pwait with no signal mask is the same call on every architecture
// (arm64 has no epoll_wait).
func rawEpollPoll(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawEpollCtl is epoll_ctl(2) on epfd for fd with events (never blocks).
func rawEpollCtl(epfd, op, fd int, events uint32) error {
	ev := unix.EpollEvent{Events: events, Fd: int32(fd)}
	_, _, e := unix.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(&ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

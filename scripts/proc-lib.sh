# shellcheck shell=bash
# Helpers the RESP measurement scripts source (bench-resp.sh, resp-cpu.sh,
# resp-cpu-sync.sh): a free loopback port, and a process's CPU time.

# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# cpu_seconds PID: user+system CPU the process has used so far.
cpu_seconds() {
  local stat
  stat=$(cat "/proc/$1/stat")
  # Fields after the command name: utime and stime are the 12th and 13th.
  awk -v tck="$(getconf CLK_TCK)" '{printf "%.3f", ($12 + $13) / tck}' <<<"${stat##*) }"
}

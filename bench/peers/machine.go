package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// Machine is what the doc says about where the figures came from.
type Machine struct {
	CPUs       int     `json:"cpus"`
	GOMAXPROCS int     `json:"gomaxprocs"`
	CPUModel   string  `json:"cpu_model"`
	MemGiB     float64 `json:"mem_gib"`
	Kernel     string  `json:"kernel"`
	GoVersion  string  `json:"go_version"`
	DataDir    string  `json:"data_dir"`
	FS         string  `json:"fs"`
	// Nice is the run's scheduling niceness (from /proc/self/stat; -1
	// when unknown): a positive value yields CPU to the machine's other
	// users, and every engine alike.
	Nice int `json:"nice"`
}

// fsNames maps statfs magic numbers to the names df -T prints.
var fsNames = map[int64]string{
	0xEF53:     "ext4",
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x01021994: "tmpfs",
	0x794C7630: "overlay",
	0x2FC12FC1: "zfs",
	0x6969:     "nfs",
	0xF2F52010: "f2fs",
}

func machine(dataDir string) (Machine, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return Machine{}, err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(abs, &st); err != nil {
		return Machine{}, fmt.Errorf("data directory %s: %w", abs, err)
	}
	fs, ok := fsNames[int64(st.Type)]
	if !ok {
		fs = fmt.Sprintf("filesystem magic %#x", st.Type)
	}
	m := Machine{
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion: runtime.Version(), DataDir: abs, FS: fs,
		CPUModel: procField("/proc/cpuinfo", "model name"),
		Kernel:   strings.TrimSpace(readFile("/proc/sys/kernel/osrelease")),
		Nice:     niceness(),
	}
	if kb, err := strconv.ParseFloat(strings.Fields(procField("/proc/meminfo", "MemTotal") + " 0")[0], 64); err == nil {
		m.MemGiB = kb / (1 << 20)
	}
	return m, nil
}

// procField is the value of the first "name: value" line of a /proc file.
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// niceness is field 19 of /proc/self/stat (after the parenthesised
// command name, which may contain spaces), or -1.
func niceness() int {
	stat := readFile("/proc/self/stat")
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); nice is field 19.
	if len(f) < 17 {
		return -1
	}
	n, err := strconv.Atoi(f[16])
	if err != nil {
		return -1
	}
	return n
}

// loadAvg is the 1-minute load average: how busy the shared machine was.
func loadAvg() float64 {
	f := strings.Fields(readFile("/proc/loadavg"))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

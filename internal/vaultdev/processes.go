// SPDX-License-Identifier: MPL-2.0

package vaultdev

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// PluginPIDs lists the running processes of the plugin binary that this
// node started.
func (s *Server) PluginPIDs() []int {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	var mine []int
	for _, pid := range AllPluginPIDs() {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after ")".
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == fmt.Sprint(s.cmd.Process.Pid) {
			mine = append(mine, pid)
		}
	}
	return mine
}

// RSSKB is a process's resident memory in kB, 0 when unknown.
func RSSKB(pid int) int {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int
			fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
			return kb
		}
	}
	return 0
}

// AllPluginPIDs lists every running process of the plugin binary.
func AllPluginPIDs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), PluginName) {
			pids = append(pids, pid)
		}
	}
	return pids
}

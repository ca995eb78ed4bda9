// SPDX-License-Identifier: MPL-2.0

package vaultdev

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"
)

// RaftServer is a single Vault node with integrated storage (Raft) on a
// directory, started from a config file as production runs it: initialised
// with one key share, unsealed, the plugin registered and mounted at
// connect/. It can be killed and started again on the same data.
type RaftServer struct {
	Server
	Dir        string // data, config and logs; kept across restarts
	UnsealKey  string
	RootToken  string
	configPath string
}

// StartRaft starts a new single-node Raft Vault in dir.
func StartRaft(bin, pluginDir, dir string) (*RaftServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	clusterPort, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &RaftServer{Dir: dir, configPath: filepath.Join(dir, "vault.hcl")}
	s.Bin, s.PluginDir, s.work = bin, pluginDir, ""
	s.Addr = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.logPath = filepath.Join(dir, "vault.log")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`storage "raft" {
  path    = %q
  node_id = "node1"
}
listener "tcp" {
  address     = "127.0.0.1:%d"
  tls_disable = true
}
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "http://127.0.0.1:%d"
plugin_directory = %q
disable_mlock    = true
`, filepath.Join(dir, "data"), port, port, clusterPort, pluginDir)
	if err := os.WriteFile(s.configPath, []byte(config), 0o600); err != nil {
		return nil, err
	}
	if err := s.launch(); err != nil {
		return nil, err
	}
	if err := s.initialize(); err != nil {
		s.Kill()
		return nil, err
	}
	if err := s.RegisterPlugin(PluginName, "connect"); err != nil {
		s.Kill()
		return nil, err
	}
	if out, err := s.CLI(nil, "secrets", "enable", "-path=connect", "connect"); err != nil {
		s.Kill()
		return nil, fmt.Errorf("enabling connect: %v\n%s", err, out)
	}
	return s, nil
}

// launch starts the server process, appending to its log.
func (s *RaftServer) launch() error {
	f, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.logFile = f
	s.cmd = exec.Command(s.Bin, "server", "-config="+s.configPath)
	s.cmd.Stdout, s.cmd.Stderr = f, f
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	client, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	s.Client = client
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := client.Sys().SealStatus(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("vault did not listen in 30s")
}

// initialize runs operator init with one key share and unseals.
func (s *RaftServer) initialize() error {
	out, err := s.cliAs("", nil, "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
	if err != nil {
		return fmt.Errorf("operator init: %v\n%s", err, out)
	}
	var res struct {
		Keys      []string `json:"unseal_keys_b64"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Keys) != 1 {
		return fmt.Errorf("operator init output: %v", err)
	}
	s.UnsealKey, s.RootToken = res.Keys[0], res.RootToken
	return s.Unseal()
}

// Unseal unseals the node and waits until it is the active node.
func (s *RaftServer) Unseal() error {
	if out, err := s.cliAs("", nil, "operator", "unseal", s.UnsealKey); err != nil {
		return fmt.Errorf("unseal: %v\n%s", err, out)
	}
	s.Client.SetToken(s.RootToken)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if h, err := s.Client.Sys().Health(); err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("vault did not become active in 60s")
}

// CLI runs the vault CLI with the root token.
func (s *RaftServer) CLI(stdin []byte, args ...string) (string, error) {
	return s.cliAs(s.RootToken, stdin, args...)
}

func (s *RaftServer) cliAs(token string, stdin []byte, args ...string) (string, error) {
	cmd := exec.Command(s.Bin, args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+s.Addr, "VAULT_TOKEN="+token, "VAULT_FORMAT=")
	if stdin != nil {
		cmd.Stdin = strings.NewReader(string(stdin))
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// RegisterPlugin registers the plugin binary as name.
func (s *RaftServer) RegisterPlugin(file, name string) error {
	sum, err := fileSHA256(filepath.Join(s.PluginDir, file))
	if err != nil {
		return err
	}
	if out, err := s.CLI(nil, "plugin", "register", "-sha256="+sum, "-command="+file, "secret", name); err != nil {
		return fmt.Errorf("registering %s: %v\n%s", file, err, out)
	}
	return nil
}

// Kill SIGKILLs Vault and every process it started (the plugins).
func (s *RaftServer) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		s.cmd.Wait()
	}
	if s.logFile != nil {
		s.logFile.Close()
		s.logFile = nil
	}
}

// Restart starts the killed node again on the same data and unseals it.
func (s *RaftServer) Restart() error {
	if err := s.launch(); err != nil {
		return err
	}
	return s.Unseal()
}

// PluginPIDs lists the running processes of the plugin binary that this
// node started.
func (s *RaftServer) PluginPIDs() []int {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	var mine []int
	for _, pid := range pluginPIDs() {
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

// pluginPIDs lists the running processes of the plugin binary.
func pluginPIDs() []int {
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

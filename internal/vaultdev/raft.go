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
	configPath string
}

// newRaftNode writes the config of one Raft node in dir; join lists the
// API addresses of nodes it retries to join.
func newRaftNode(bin, pluginDir, dir, nodeID string, join []string) (*RaftServer, error) {
	var joins strings.Builder
	for _, addr := range join {
		fmt.Fprintf(&joins, "  retry_join {\n    leader_api_addr = %q\n  }\n", addr)
	}
	// performance_multiplier 1: production timing, not the default's
	// five-fold slack, so a failover takes seconds.
	storage := fmt.Sprintf(`storage "raft" {
  path                   = %q
  node_id                = %q
  performance_multiplier = 1
%s}
`, filepath.Join(dir, "data"), nodeID, joins.String())
	return newConfiguredNode(bin, pluginDir, dir, storage, "")
}

// newConfiguredNode writes the config of one node in dir with the given
// storage stanza, whose data goes under dir/data; listenerExtra is added
// inside the listener stanza.
func newConfiguredNode(bin, pluginDir, dir, storage, listenerExtra string) (*RaftServer, error) {
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
	config := fmt.Sprintf(`%slistener "tcp" {
  address         = "127.0.0.1:%d"
  cluster_address = "127.0.0.1:%d"
  tls_disable     = true
%s}
api_addr         = "http://127.0.0.1:%d"
cluster_addr     = "http://127.0.0.1:%d"
plugin_directory = %q
disable_mlock    = true
# Tests read what the plugin stored through sys/raw, with code of their own.
raw_storage_endpoint = true
`, storage, port, clusterPort, listenerExtra, port, clusterPort, pluginDir)
	return s, os.WriteFile(s.configPath, []byte(config), 0o600)
}

// StartRaft starts a new single-node Raft Vault in dir.
func StartRaft(bin, pluginDir, dir string) (*RaftServer, error) {
	s, err := newRaftNode(bin, pluginDir, dir, "node1", nil)
	if err != nil {
		return nil, err
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// StartFile starts a new Vault with file storage in dir (the data under
// dir/data, one file per key), like StartRaft otherwise: the same Kill,
// Restart and Unseal apply.
func StartFile(bin, pluginDir, dir string) (*RaftServer, error) {
	return StartFileWithListener(bin, pluginDir, dir, "")
}

// StartFileWithListener is StartFile with listenerExtra added inside the
// listener stanza, e.g. a custom_response_headers block as a deployment
// writes it.
func StartFileWithListener(bin, pluginDir, dir, listenerExtra string) (*RaftServer, error) {
	s, err := newConfiguredNode(bin, pluginDir, dir, fmt.Sprintf("storage \"file\" {\n  path = %q\n}\n", filepath.Join(dir, "data")), listenerExtra)
	if err != nil {
		return nil, err
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// start launches a new node, initialises and unseals it, and mounts the
// plugin at connect/; on failure the node is killed.
func (s *RaftServer) start() error {
	if err := s.launch(); err != nil {
		return err
	}
	if err := s.initialize(); err != nil {
		s.Kill()
		return err
	}
	if err := s.RegisterPlugin(PluginName, "connect"); err != nil {
		s.Kill()
		return err
	}
	if out, err := s.CLI(nil, "secrets", "enable", "-path=connect", "connect"); err != nil {
		s.Kill()
		return fmt.Errorf("enabling connect: %v\n%s", err, out)
	}
	if out, err := s.CLI(nil, append([]string{"secrets", "tune"}, append(MountHeaderFlags, "connect/")...)...); err != nil {
		s.Kill()
		return fmt.Errorf("tuning connect: %v\n%s", err, out)
	}
	return nil
}

// StartRaftCluster starts n Raft nodes in subdirectories of dir: the first
// is initialised, unsealed and has the plugin mounted; the others join it
// and are unsealed with its key, as standbys.
func StartRaftCluster(bin, pluginDir, dir string, n int) ([]*RaftServer, error) {
	first, err := StartRaft(bin, pluginDir, filepath.Join(dir, "node1"))
	if err != nil {
		return nil, err
	}
	nodes := []*RaftServer{first}
	for i := 2; i <= n; i++ {
		node, err := newRaftNode(bin, pluginDir, filepath.Join(dir, fmt.Sprintf("node%d", i)), fmt.Sprintf("node%d", i), []string{first.Addr})
		if err == nil {
			node.UnsealKey, node.Token = first.UnsealKey, first.Token
			err = node.launch()
		}
		if err == nil {
			err = node.unsealStandby()
		}
		if err != nil {
			log := ""
			if node != nil {
				b, _ := os.ReadFile(node.logPath)
				log = tail(string(b), 3000)
			}
			for _, s := range append(nodes, node) {
				if s != nil {
					s.Kill()
				}
			}
			return nil, fmt.Errorf("node %d: %w\n%s", i, err, log)
		}
		nodes = append(nodes, node)
	}
	if err := first.waitVoters(n); err != nil {
		for _, s := range nodes {
			s.Kill()
		}
		return nil, err
	}
	return nodes, nil
}

// waitVoters waits until the cluster has n voters: autopilot promotes a
// joined node only once it is stable, and a failover needs a quorum.
func (s *RaftServer) waitVoters(n int) error {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		sec, err := s.Client.Logical().Read("sys/storage/raft/configuration")
		if err == nil && sec != nil {
			cfg, _ := sec.Data["config"].(map[string]any)
			servers, _ := cfg["servers"].([]any)
			voters := 0
			for _, srv := range servers {
				if m, ok := srv.(map[string]any); ok && m["voter"] == true {
					voters++
				}
			}
			if voters >= n {
				return nil
			}
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("the cluster did not reach %d voters in 90s", n)
}

// unsealStandby unseals a node that joins an existing cluster and waits
// until it serves as a standby.
func (s *RaftServer) unsealStandby() error {
	s.Client.SetToken(s.Token)
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		// Unsealing fails until the node has joined; keep trying.
		s.CLIAs("", nil, "operator", "unseal", s.UnsealKey)
		if h, err := s.Client.Sys().Health(); err == nil && h.Initialized && !h.Sealed {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("standby did not unseal in 90s")
}

// IsActive reports whether the node is the active node.
func (s *RaftServer) IsActive() bool {
	h, err := s.Client.Sys().Health()
	return err == nil && !h.Sealed && !h.Standby
}

// RestartStandby starts a killed node again and unseals it, without
// waiting for it to become active.
func (s *RaftServer) RestartStandby() error {
	if err := s.launch(); err != nil {
		return err
	}
	return s.unsealStandby()
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
	out, err := s.CLIAs("", nil, "operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
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
	s.UnsealKey, s.Token = res.Keys[0], res.RootToken
	return s.Unseal()
}

// Unseal unseals the node and waits until it is the active node.
func (s *RaftServer) Unseal() error {
	if out, err := s.CLIAs("", nil, "operator", "unseal", s.UnsealKey); err != nil {
		return fmt.Errorf("unseal: %v\n%s", err, out)
	}
	s.Client.SetToken(s.Token)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if h, err := s.Client.Sys().Health(); err == nil && h.Initialized && !h.Sealed && !h.Standby {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("vault did not become active in 60s")
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

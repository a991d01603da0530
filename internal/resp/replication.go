package resp

import "github.com/mantisdb/mantisdb/internal/cluster"

// writeReplication fills INFO's replication section: a single node is a
// master without replicas; a cluster member reports its raft role (the
// leader as master, the others as slaves of it, for tools that read the
// Redis fields) and the cluster's figures.
func (srv *Server) writeReplication(line func(string, any)) {
	node, ok := srv.store.Engine().(*cluster.Engine)
	if !ok {
		line("role", "master")
		line("connected_slaves", 0)
		return
	}
	f, err := node.Figures()
	if err != nil {
		line("role", "master")
		line("mantisdb_cluster_error", err.Error())
		return
	}
	role := "slave"
	if f.Leader {
		role = "master"
	}
	line("role", role)
	if f.Leader {
		line("connected_slaves", max(f.Members-1, 0))
	} else {
		line("master_link_status", linkStatus(node.LeaderID() != ""))
	}
	line("mantisdb_cluster_node_id", node.NodeID())
	line("mantisdb_cluster_state", f.State)
	line("mantisdb_cluster_leader_id", node.LeaderID())
	line("mantisdb_cluster_term", f.Term)
	line("mantisdb_cluster_members", f.Members)
	line("mantisdb_cluster_commit_index", f.CommitIndex)
	line("mantisdb_cluster_applied_index", f.AppliedIndex)
	line("mantisdb_cluster_last_contact_ms", f.SinceContact.Milliseconds())
	for _, c := range f.InfoFields() {
		line(c.Name, c.Value)
	}
}

func linkStatus(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

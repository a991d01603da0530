// The Cluster panel: the replication state a cluster member reports in the
// dashboard answer's `cluster` field (the same as GET /api/v1/cluster).
// A single node's answer has no such field, and the panel stays hidden.

function tile(label, value) {
  const d = document.createElement('div');
  d.className = 'tile';
  const l = document.createElement('span');
  l.textContent = label;
  const v = document.createElement('strong');
  v.textContent = value;
  d.append(l, v);
  return d;
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

export class ClusterPanel {
  constructor(root) {
    this.box = root.querySelector('#cluster');
    this.tiles = root.querySelector('#cluster-tiles');
    this.rows = root.querySelector('#cluster-members');
    this.error = root.querySelector('#cluster-error');
  }

  // render shows cur.cluster, or hides the panel on a single node.
  render(cur) {
    const c = cur.cluster;
    if (!c && !cur.cluster_error) {
      this.box.hidden = true;
      return;
    }
    this.box.hidden = false;
    this.error.textContent = cur.cluster_error ? `No cluster status: ${cur.cluster_error}` : '';
    if (!c) {
      this.tiles.replaceChildren();
      this.rows.replaceChildren();
      return;
    }
    const leader = c.leader_id ? `${c.leader_id} (${c.leader_address})` : 'none known';
    this.tiles.replaceChildren(
      tile('Node', c.id),
      tile('Role', c.state),
      tile('Leader', leader),
      tile('Term', String(c.term)),
      tile('Applied / commit', `${c.applied_index} / ${c.commit_index}`),
    );
    this.rows.replaceChildren(...c.members.map((m) => {
      const row = document.createElement('tr');
      row.dataset.member = m.id;
      const role = m.reachable ? m.state : 'unreachable';
      const name = m.id + (m.self ? ' (this node)' : '');
      row.append(
        cell(name),
        cell(m.address),
        cell(role + (m.voter ? '' : ', non-voter')),
        cell(m.reachable ? String(m.applied_index) : '–'),
        cell(m.reachable ? String(m.lag) : '–'),
      );
      if (!m.reachable) {
        row.className = 'unreachable';
        row.title = m.error ?? '';
      }
      return row;
    }));
  }
}

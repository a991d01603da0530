package clusterfault

import (
	"fmt"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// opKind is what a client did.
type opKind int

const (
	opGet opKind = iota
	opPut
	opDelete
	opCAS
)

func (k opKind) String() string { return [...]string{"get", "put", "delete", "cas"}[k] }

// kvInput is one operation's request. Values are unique per write, and the
// empty string stands for an absent key (no write uses it).
type kvInput struct {
	Kind     opKind
	Key      string
	Value    string // put: the value; cas: the new value
	Expected string // cas: the value compared against
	// Proto is the protocol the client used ("http", "resp"; the final
	// reads use HTTP); the model does not look at it.
	Proto string
}

// kvOutput is one operation's answer. Unknown marks a write whose outcome
// the client could not learn (timeout, lost connection, 503): it may or may
// not have taken effect, and its return time is the end of the history.
type kvOutput struct {
	Value string // get: the value read ("" absent)
	OK    bool   // cas: whether it swapped
	// Aborted marks a Redis CAS whose EXEC answered nil: the transaction
	// did not run, which Redis allows for any write of a watched key
	// after WATCH and also for writes it cannot order (see respClient.cas);
	// it changed nothing and says nothing about the value.
	Aborted bool
	Unknown bool
}

// kvModel is a register per key: the history is partitioned by key, and
// each key's operations must be linearizable on their own (which makes the
// whole history linearizable, since keys are independent).
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := make(map[string][]porcupine.Operation)
		for _, op := range history {
			k := op.Input.(kvInput).Key
			byKey[k] = append(byKey[k], op)
		}
		keys := make([]string, 0, len(byKey))
		for k := range byKey {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(string), input.(kvInput), output.(kvOutput)
		switch in.Kind {
		case opGet:
			return out.Value == st, st
		case opPut:
			return true, in.Value
		case opDelete:
			return true, ""
		case opCAS:
			if out.Aborted {
				return true, st
			}
			if out.Unknown {
				if st == in.Expected {
					return true, in.Value
				}
				return true, st
			}
			if out.OK {
				return st == in.Expected, in.Value
			}
			return st != in.Expected, st
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(kvInput), output.(kvOutput)
		suffix := ""
		if out.Unknown {
			suffix = " (outcome unknown)"
		}
		switch in.Proto {
		case "http", "resp":
			suffix += " over " + in.Proto
		case "final":
			suffix += " (final read)"
		}
		switch in.Kind {
		case opGet:
			return fmt.Sprintf("get(%s) -> %q%s", in.Key, out.Value, suffix)
		case opCAS:
			if out.Aborted {
				suffix = " (EXEC aborted)" + suffix
			}
			return fmt.Sprintf("cas(%s, %q -> %q) -> %v%s", in.Key, in.Expected, in.Value, out.OK, suffix)
		case opPut:
			return fmt.Sprintf("put(%s, %q)%s", in.Key, in.Value, suffix)
		default:
			return fmt.Sprintf("delete(%s)%s", in.Key, suffix)
		}
	},
}

// checkResult is the verdict on one history.
type checkResult struct {
	Ops        int
	Keys       int
	Linearized bool
	// TimedOut says the checker gave up before deciding (not a pass).
	TimedOut bool
	// Bad lists the operations of keys that failed, described.
	Bad []string
}

// checkHistory checks ops for linearizability, giving up after timeout.
func checkHistory(ops []porcupine.Operation, timeout time.Duration) checkResult {
	res := checkResult{Ops: len(ops), Keys: len(kvModel.Partition(ops))}
	verdict, info := porcupine.CheckOperationsVerbose(kvModel, ops, timeout)
	switch verdict {
	case porcupine.Ok:
		res.Linearized = true
	case porcupine.Unknown:
		res.TimedOut = true
	default:
		for _, part := range kvModel.Partition(ops) {
			if porcupine.CheckOperations(kvModel, part) {
				continue
			}
			for _, op := range part {
				res.Bad = append(res.Bad, fmt.Sprintf("[%d..%d] client %d %s", op.Call, op.Return, op.ClientId, kvModel.DescribeOperation(op.Input, op.Output)))
			}
			break
		}
	}
	_ = info
	return res
}

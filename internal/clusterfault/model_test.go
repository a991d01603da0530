package clusterfault

import (
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

func op(client int, call, ret int64, in kvInput, out kvOutput) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
}

func TestCheckerAcceptsALinearizableHistory(t *testing.T) {
	h := []porcupine.Operation{
		op(0, 0, 10, kvInput{Kind: opPut, Key: "a", Value: "1"}, kvOutput{}),
		op(1, 5, 15, kvInput{Kind: opGet, Key: "a"}, kvOutput{Value: ""}), // concurrent with the put
		op(1, 20, 30, kvInput{Kind: opCAS, Key: "a", Expected: "1", Value: "2"}, kvOutput{OK: true}),
		op(0, 21, 31, kvInput{Kind: opCAS, Key: "a", Expected: "1", Value: "3"}, kvOutput{OK: false}),
		op(2, 40, 50, kvInput{Kind: opGet, Key: "a"}, kvOutput{Value: "2"}),
		op(2, 60, 70, kvInput{Kind: opDelete, Key: "a"}, kvOutput{}),
		op(0, 80, 90, kvInput{Kind: opGet, Key: "a"}, kvOutput{Value: ""}),
		// A write whose outcome is unknown may take effect late, or never.
		op(1, 100, 1<<40, kvInput{Kind: opPut, Key: "b", Value: "x"}, kvOutput{Unknown: true}),
		op(0, 200, 210, kvInput{Kind: opGet, Key: "b"}, kvOutput{Value: ""}),
		op(0, 300, 310, kvInput{Kind: opGet, Key: "b"}, kvOutput{Value: "x"}),
	}
	if r := checkHistory(h, 10*time.Second); !r.Linearized {
		t.Fatalf("a linearizable history failed: %+v", r)
	}
}

func TestCheckerTakesAnAbortedCASAsNoChange(t *testing.T) {
	// An aborted EXEC while the key held the expected value: no change,
	// and no claim about the value.
	h := []porcupine.Operation{
		op(0, 0, 10, kvInput{Kind: opPut, Key: "k", Value: "1"}, kvOutput{}),
		op(1, 20, 30, kvInput{Kind: opCAS, Key: "k", Expected: "1", Value: "2"}, kvOutput{Aborted: true}),
		op(2, 40, 50, kvInput{Kind: opGet, Key: "k"}, kvOutput{Value: "1"}),
	}
	if r := checkHistory(h, 10*time.Second); !r.Linearized {
		t.Fatalf("an aborted CAS failed the check: %+v", r)
	}
	// A plain false CAS there is a violation.
	h[1].Output = kvOutput{}
	if checkHistory(h, 10*time.Second).Linearized {
		t.Fatal("a false CAS while the key held the expected value passed")
	}
	// An aborted CAS does not hide a write that happened.
	h[1].Output = kvOutput{Aborted: true}
	h[2].Output = kvOutput{Value: "2"}
	if checkHistory(h, 10*time.Second).Linearized {
		t.Fatal("a read of an aborted CAS's value passed")
	}
}

func TestCheckerCatchesAStaleRead(t *testing.T) {
	// The put was acknowledged before the get began; the get missed it.
	h := []porcupine.Operation{
		op(0, 0, 10, kvInput{Kind: opPut, Key: "k", Value: "new"}, kvOutput{}),
		op(1, 20, 30, kvInput{Kind: opGet, Key: "k"}, kvOutput{Value: ""}),
	}
	r := checkHistory(h, 10*time.Second)
	if r.Linearized || r.TimedOut || len(r.Bad) != 2 {
		t.Fatalf("a stale read passed: %+v", r)
	}
}

func TestCheckerCatchesALostWriteAndAWrongCAS(t *testing.T) {
	lost := []porcupine.Operation{
		op(0, 0, 10, kvInput{Kind: opPut, Key: "k", Value: "1"}, kvOutput{}),
		op(0, 20, 30, kvInput{Kind: opPut, Key: "k", Value: "2"}, kvOutput{}),
		op(1, 40, 50, kvInput{Kind: opGet, Key: "k"}, kvOutput{Value: "1"}),
	}
	if checkHistory(lost, 10*time.Second).Linearized {
		t.Fatal("a read of an overwritten value passed")
	}
	cas := []porcupine.Operation{
		op(0, 0, 10, kvInput{Kind: opPut, Key: "k", Value: "1"}, kvOutput{}),
		op(1, 20, 30, kvInput{Kind: opCAS, Key: "k", Expected: "1", Value: "2"}, kvOutput{OK: true}),
		op(2, 40, 50, kvInput{Kind: opCAS, Key: "k", Expected: "1", Value: "3"}, kvOutput{OK: true}),
	}
	if checkHistory(cas, 10*time.Second).Linearized {
		t.Fatal("two CAS from the same value both succeeding passed")
	}
}

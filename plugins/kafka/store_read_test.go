package kafka

import (
	"bytes"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
)

// readSaved reads key with ReadSaved up to ends (nil: the end now).
func readSaved(t *testing.T, c *kfake.Cluster, key string, ends kadm.ListedOffsets) Saved {
	t.Helper()
	saved, err := ReadSaved(edgeContext(t, 20*time.Second), c.ListenAddrs(), "state", key, ends)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return saved
}

// TestReadSavedReadsWhatStoresSaved saves through stores and reads back
// with ReadSaved: a multi-chunk value, the same value after a second
// owner's claim, not a fenced former owner's save, the second owner's
// save, and up to earlier end offsets the value there was then.
func TestReadSavedReadsWhatStoresSaved(t *testing.T) {
	c := edgeCluster(t)
	a := edgeReadyStore(t, c)
	if saved := readSaved(t, c, "k", nil); saved.Found || saved.Value != nil || saved.Manifests != 0 {
		t.Fatalf("read %+v of a key never saved", saved)
	}

	claim(t, a, "k")
	first := edgeValue(stateChunkSize*3+100, 1) // four chunks
	save(t, a, "k", first)
	if saved := readSaved(t, c, "k", nil); !saved.Found || !bytes.Equal(saved.Value, first) || saved.Manifests != 2 {
		t.Fatalf("read %d bytes (found %v, %d manifests), want a's %d bytes and its fence and save", len(saved.Value), saved.Found, saved.Manifests, len(first))
	}

	b := edgeReadyStore(t, c)
	if v, _ := claim(t, b, "k"); !bytes.Equal(v, first) {
		t.Fatalf("b claimed %d bytes, want a's %d", len(v), len(first))
	}
	claimed, err := edgeAdmin(t, c).ListEndOffsets(edgeContext(t, 10*time.Second), "state")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Save(edgeContext(t, 20*time.Second), "k", edgeValue(100, 2)); !isFenced(err) {
		t.Fatalf("a saved after b's claim: %v", err)
	}
	if saved := readSaved(t, c, "k", nil); !bytes.Equal(saved.Value, first) {
		t.Fatalf("after a's fenced save: read %d bytes, want b's copy of the %d claimed", len(saved.Value), len(first))
	}

	second := edgeValue(200, 3)
	save(t, b, "k", second)
	if saved := readSaved(t, c, "k", nil); !saved.Found || !bytes.Equal(saved.Value, second) {
		t.Fatalf("read %q (found %v), want b's save %q", saved.Value, saved.Found, second)
	}
	if saved := readSaved(t, c, "k", claimed); !bytes.Equal(saved.Value, first) {
		t.Fatalf("up to the end offsets after b's claim: read %d bytes, want the %d claimed", len(saved.Value), len(first))
	}
	if saved := readSaved(t, c, "other", nil); saved.Found {
		t.Fatalf("read %d bytes of a key never saved", len(saved.Value))
	}
}

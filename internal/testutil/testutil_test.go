package testutil

import (
	"strings"
	"sync"
	"testing"
)

// TestSyncBufferConcurrent writes from many goroutines while reading: every
// write arrives whole (run with -race to see the lock matters).
func TestSyncBufferConcurrent(t *testing.T) {
	var b SyncBuffer
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				if n, err := b.Write([]byte("line\n")); n != 5 || err != nil {
					t.Errorf("Write = %d, %v", n, err)
				}
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if got := b.String(); got != strings.Repeat("line\n", 800) {
		t.Fatalf("got %d bytes, want %d whole lines", len(got), 800)
	}
}

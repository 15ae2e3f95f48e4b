package storage

// S3HelperPIDs returns the process IDs of the live S3 helpers.
func S3HelperPIDs() []int {
	s3Helpers.mu.Lock()
	defer s3Helpers.mu.Unlock()
	var pids []int
	for _, c := range s3Helpers.m {
		if c.failed() == nil {
			pids = append(pids, c.cmd.Process.Pid)
		}
	}
	return pids
}

// EncodeBetterWherePays is the S2Better encoder of one chunk's present
// pages.
func EncodeBetterWherePays(raw []byte) []byte {
	j := &memJob{out: make([]byte, 0, ChunkSpan+ChunkSpan/8)}
	return j.encodeBetterWherePays(raw)
}

// ScratchMade returns how many read and decompression buffers were made
// so far.
func ScratchMade() int64 { return scratchMade.Load() }

// SetPackMinBytes sets how much memory a writer must be handed before it
// packs its new chunks, and returns what puts the default back.
func SetPackMinBytes(n uint64) func() {
	old := packMinBytes
	packMinBytes = n
	return func() { packMinBytes = old }
}

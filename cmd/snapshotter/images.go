package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"snapshotter/runner"
	"snapshotter/storage"
)

func init() {
	registerCommand("images", newImagesCmd)
	registerCommand("inspect", newInspectCmd)
	registerCommand("rm", newRmCmd)
	registerCommand("keygen", newKeygenCmd)
}

func newImagesCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "images",
		Short: "List the images of a store (--store, default the local store)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := storage.Open(cmd.Context(), g.store)
			if err != nil {
				return err
			}
			ents, err := s.List(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tCREATED\tMEMORY\tSTORED\tRATIO\tPROGRAM")
			for _, e := range ents {
				if e.Err != nil {
					fmt.Fprintf(tw, "%s\t-\t-\t-\t-\tunreadable: %v\n", e.Name, e.Err)
					continue
				}
				m := e.Manifest
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1fx\t%s\n", e.Name, m.Created.Local().Format(time.DateTime),
					humanBytes(m.MemorySize), humanBytes(uint64(m.StoredSize())), m.Ratio(), m.Metadata["program"])
			}
			return tw.Flush()
		},
	}
}

// inspectReport is the --json output of snap inspect.
type inspectReport struct {
	URI           string    `json:"uri"`
	Format        string    `json:"format"`
	Arch          string    `json:"arch"`
	Created       time.Time `json:"created"`
	SnapVersion   string    `json:"snapVersion,omitempty"`
	Compression   string    `json:"compression"`
	MemorySize    uint64    `json:"memorySize"`
	MemoryData    uint64    `json:"memoryData"`
	MemoryStored  int64     `json:"memoryStored"`
	StateSize     int64     `json:"stateSize"`
	StateStored   int64     `json:"stateStored"`
	StoredSize    int64     `json:"storedSize"`
	Ratio         float64   `json:"ratio"`
	Chunks        uint64    `json:"chunks"`
	ChunkHash     string    `json:"chunkHash,omitempty"`
	ChecksumsOK   bool      `json:"checksumsOK"`
	ChecksumError string    `json:"checksumError,omitempty"`
	// SignedBy is the ID of the key the image claims to be signed by
	// (storage.KeyID), empty if unsigned; SignatureOK is set when
	// --verify checked it.
	SignedBy    string            `json:"signedBy,omitempty"`
	SignatureOK bool              `json:"signatureOK,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// Parent is set for an image saved with --parent.
	Parent *parentReport `json:"parent,omitempty"`
	// WorkingSet describes the image's working set (snap restore
	// --lazy).
	WorkingSet workingSetReport `json:"workingSet"`
}

// workingSetReport describes an image's working set: Status is "none",
// "recorded" or "unreadable" (Error says why); Chunks and Bytes (logical)
// are what a lazy restore loads before the program starts.
type workingSetReport struct {
	Status string `json:"status"`
	Chunks int    `json:"chunks"`
	Bytes  uint64 `json:"bytes"`
	Error  string `json:"error,omitempty"`
}

// parentReport compares an image's chunks with its parent's.
type parentReport struct {
	URI string `json:"uri"`
	// Status is "ok", "changed" (its manifest is not the one recorded)
	// or "missing" (deleted or unreadable).
	Status       string `json:"status"`
	SharedChunks uint64 `json:"sharedChunks"`
	SharedBytes  uint64 `json:"sharedBytes"`
	NewChunks    uint64 `json:"newChunks"`
	NewBytes     uint64 `json:"newBytes"`
}

func newInspectCmd(g *globalFlags) *cobra.Command {
	var (
		asJSON bool
		verify string
	)
	cmd := &cobra.Command{
		Use:   "inspect URI [--json] [--verify KEYFILE]",
		Short: "Show an image's format, sizes and compression, and verify every checksum",
		Long: `inspect reads an image's manifest and memory index, then reads every blob
and verifies every checksum. It exits non-zero if a checksum does not verify.
URI is file:///dir/NAME, a path, s3://bucket/prefix/NAME, or a bare NAME in
the --store store. The image is opened with the checks of snap restore (a
memory size this snap can restore); --verify KEYFILE (an ed25519 public key,
PEM) also requires the image to be signed by that key and unaltered.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			key, err := readVerifyKey(verify)
			if err != nil {
				return fmt.Errorf("inspect %s: %w", args[0], err)
			}
			img, err := runner.OpenImage(ctx, args[0], g.store, key)
			if err != nil {
				return err
			}
			defer img.Close()
			m := img.Manifest()
			codec := m.Compression.Algorithm
			if m.Compression.Level > 0 {
				codec = fmt.Sprintf("%s level %d", codec, m.Compression.Level)
			}
			r := inspectReport{
				URI: img.URI(), Format: fmt.Sprintf("%d.%d", m.Major, m.Minor), Arch: m.Arch,
				Created: m.Created, SnapVersion: m.SnapVersion,
				Compression: codec,
				MemorySize:  m.MemorySize, MemoryData: m.MemoryData, MemoryStored: m.Memory.Size,
				StateSize: m.State.RawSize, StateStored: m.State.Size, StoredSize: m.StoredSize(),
				Ratio: m.Ratio(), Chunks: m.Chunks, ChunkHash: m.ChunkHashName(), Metadata: m.Metadata,
				SignatureOK: key != nil,
			}
			if m.Signer != nil {
				r.SignedBy = storage.KeyID(m.Signer)
			}
			if m.Parent != nil {
				sh := storage.CompareWithParent(ctx, img)
				r.Parent = &parentReport{URI: m.Parent.URI, Status: "ok",
					SharedChunks: sh.SharedChunks, SharedBytes: sh.SharedBytes, NewChunks: sh.NewChunks, NewBytes: sh.NewBytes}
				switch {
				case sh.Missing:
					r.Parent.Status = "missing"
				case sh.Changed:
					r.Parent.Status = "changed"
				}
			}
			r.WorkingSet = workingSetOf(ctx, img)
			verr := img.Verify(ctx)
			r.ChecksumsOK = verr == nil
			if verr != nil {
				r.ChecksumError = verr.Error()
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(r); err != nil {
					return err
				}
			} else {
				printInspect(out, &r)
			}
			if verr != nil {
				return fmt.Errorf("inspect %s: checksums do not verify: %w", img.URI(), verr)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().StringVar(&verify, "verify", "", "require the image to be signed by this ed25519 public key file (PEM)")
	return cmd
}

func newKeygenCmd(*globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "keygen PRIVFILE PUBFILE",
		Short: "Make an ed25519 key pair for save --sign (PRIVFILE) and restore --verify (PUBFILE)",
		Long: `keygen writes a new ed25519 private key to PRIVFILE (mode 0600) and its public
key to PUBFILE, as PEM files in OpenSSL's formats (PKCS #8 and PKIX): keys
made with openssl genpkey -algorithm ed25519 work as well. Neither file may
exist. Keep PRIVFILE where images are saved, give PUBFILE to where they are
restored.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := storage.GenerateKeyFiles(args[0], args[1]); err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			return nil
		},
	}
}

// workingSetOf reports img's working set.
func workingSetOf(ctx context.Context, img *storage.Image) workingSetReport {
	ws, ok, err := img.WorkingSet(ctx)
	switch {
	case err != nil:
		return workingSetReport{Status: "unreadable", Error: err.Error()}
	case !ok:
		return workingSetReport{Status: "none"}
	}
	r := workingSetReport{Status: "recorded", Chunks: len(ws)}
	for _, i := range ws {
		r.Bytes += uint64(img.Chunks()[i].Span)
	}
	return r
}

func printInspect(w io.Writer, r *inspectReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Image:\t%s\n", r.URI)
	fmt.Fprintf(tw, "Format:\t%s (%s)\n", r.Format, r.Arch)
	fmt.Fprintf(tw, "Created:\t%s", r.Created.Local().Format(time.RFC3339))
	if r.SnapVersion != "" {
		fmt.Fprintf(tw, " by snap %s", r.SnapVersion)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "Compression:\t%s\n", r.Compression)
	fmt.Fprintf(tw, "Memory:\t%s logical, %s non-zero, %s stored in %d chunks",
		humanBytes(r.MemorySize), humanBytes(r.MemoryData), humanBytes(uint64(r.MemoryStored)), r.Chunks)
	if r.ChunkHash != "" {
		fmt.Fprintf(tw, " addressed by %s", r.ChunkHash)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "State:\t%s, %s stored\n", humanBytes(uint64(r.StateSize)), humanBytes(uint64(r.StateStored)))
	fmt.Fprintf(tw, "Stored:\t%s (ratio %.1fx)\n", humanBytes(uint64(r.StoredSize)), r.Ratio)
	switch ws := r.WorkingSet; ws.Status {
	case "recorded":
		fmt.Fprintf(tw, "Working set:\t%d chunks, %s (loaded first by restore --lazy)\n", ws.Chunks, humanBytes(ws.Bytes))
	case "unreadable":
		fmt.Fprintf(tw, "Working set:\tunreadable (%s)\n", ws.Error)
	default:
		fmt.Fprintf(tw, "Working set:\tnone\n")
	}
	if p := r.Parent; p != nil {
		fmt.Fprintf(tw, "Parent:\t%s", p.URI)
		if p.Status != "ok" {
			fmt.Fprintf(tw, " (%s)", p.Status)
		}
		fmt.Fprintln(tw)
		fmt.Fprintf(tw, "Chunks:\t%d shared with the parent (%s), %d new (%s)\n",
			p.SharedChunks, humanBytes(p.SharedBytes), p.NewChunks, humanBytes(p.NewBytes))
	}
	if r.ChecksumsOK {
		fmt.Fprintf(tw, "Checksums:\tverified\n")
	} else {
		fmt.Fprintf(tw, "Checksums:\tFAILED: %s\n", r.ChecksumError)
	}
	switch {
	case r.SignedBy == "":
		fmt.Fprintf(tw, "Signature:\tnone\n")
	case r.SignatureOK:
		fmt.Fprintf(tw, "Signature:\tkey %s, verified\n", r.SignedBy)
	default:
		fmt.Fprintf(tw, "Signature:\tkey %s, not verified (give --verify KEYFILE)\n", r.SignedBy)
	}
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(tw, "Metadata %s:\t%s\n", k, r.Metadata[k])
	}
	tw.Flush()
}

func newRmCmd(g *globalFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [--force] URI...",
		Short: "Delete images",
		Long: `rm deletes images. Their memory chunks stay in the store while another image
references them; snap prune removes the unreferenced ones. An image that
another image of its store names as its parent (snap save --parent) is not
deleted unless --force is given: the children stay complete and restore as
before (they reference every chunk they need), but lose the record of what
they were saved against (snap inspect shows the parent missing), and a
later save cannot name it as parent. With --force, rm names those images on
stderr.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Delete all that can be; report the failures on one line.
			var first error
			var msgs []string
			for _, uri := range args {
				s, name, err := storage.Locate(cmd.Context(), uri, g.store)
				if err == nil {
					err = deleteImage(cmd, s, name, force)
				}
				if err != nil {
					first = cmp.Or(first, err)
					msgs = append(msgs, err.Error())
				}
			}
			if len(msgs) > 1 {
				return fmt.Errorf("%s (and %d more: %s)", msgs[0], len(msgs)-1, strings.Join(msgs[1:], "; "))
			}
			return first
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "delete images that others name as parent too")
	return cmd
}

// deleteImage deletes image name of s unless another image names it as
// parent and force is not set (ErrInvalidArgument).
func deleteImage(cmd *cobra.Command, s storage.Store, name string, force bool) error {
	children, err := storage.Children(cmd.Context(), s, name)
	if err != nil {
		return fmt.Errorf("delete %s: %w", s.ImageURI(name), err)
	}
	if len(children) > 0 && !force {
		return fmt.Errorf("delete %s: it is the parent of %s (they restore without it; --force deletes it anyway): %w",
			s.ImageURI(name), strings.Join(children, ", "), storage.ErrInvalidArgument)
	}
	if err := s.Delete(cmd.Context(), name); err != nil {
		return err
	}
	if len(children) > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "deleted %s, the parent of %s (they still restore; their parent is now missing)\n",
			s.ImageURI(name), strings.Join(children, ", "))
	}
	return nil
}

// humanBytes formats n with a binary unit (1.5 GiB).
func humanBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") + " " + string(units[i]) + "iB"
}

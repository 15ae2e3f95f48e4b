package storage

import (
	"context"
	"errors"
	"fmt"
)

// Parents (format 1.2). An image saved with CreateOptions.Parent names an
// earlier image of the same store by URI and manifest SHA-256. Nothing
// depends on the parent physically: the child's index references every
// chunk it needs, chunks equal to the parent's are simply the same chunks.
// The reference says where the child came from (snap inspect compares
// them) and lets snap rm warn before deleting an image others were saved
// against.

// ResolveParent reads the manifest of image parentURI (a URI, or a name
// in storeURI) and returns the reference a child records: its URI in its
// store and its manifest's SHA-256. ErrNotFound if it does not exist,
// ErrCorrupt (and the other manifest errors) if it does not load.
func ResolveParent(ctx context.Context, parentURI, storeURI string) (*ParentRef, *Manifest, error) {
	s, name, err := Locate(ctx, parentURI, storeURI)
	if err != nil {
		return nil, nil, fmt.Errorf("parent %s: %w", parentURI, err)
	}
	m, err := s.Stat(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("parent: %w", err)
	}
	return &ParentRef{URI: s.ImageURI(name), ManifestSHA256: m.Digest()}, m, nil
}

// checkParent checks that p names an image of store s whose manifest is
// still the one p recorded, and returns that manifest: ErrInvalidArgument
// if it is in another store (chunks are shared within a store only),
// ErrNotFound if it vanished, ErrParentChanged if its manifest differs.
func (s *store) checkParent(ctx context.Context, p *ParentRef) (*Manifest, error) {
	loc, err := ParseURI(p.URI)
	if err != nil {
		return nil, fmt.Errorf("parent %s: %w", p.URI, err)
	}
	if s.b.imageURI(loc.Name) != p.URI {
		return nil, fmt.Errorf("parent %s is not in store %s, where the image goes (chunks are shared within a store only): %w",
			p.URI, s.b.storeURI(), ErrInvalidArgument)
	}
	m, err := s.Stat(ctx, loc.Name)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("parent %s vanished: %w", p.URI, err)
	}
	if err != nil {
		return nil, fmt.Errorf("parent: %w", err)
	}
	if m.Digest() != p.ManifestSHA256 {
		return nil, fmt.Errorf("parent %s: manifest SHA-256 %.12s..., want %.12s...: %w", p.URI, m.Digest(), p.ManifestSHA256, ErrParentChanged)
	}
	return m, nil
}

// Children returns the names of the images of s that name image name as
// their parent.
func Children(ctx context.Context, s Store, name string) ([]string, error) {
	ents, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	uri := s.ImageURI(name)
	var out []string
	for _, e := range ents {
		if e.Manifest != nil && e.Manifest.Parent != nil && e.Manifest.Parent.URI == uri {
			out = append(out, e.Name)
		}
	}
	return out, nil
}

// ParentShare compares an image's chunks with its parent's.
type ParentShare struct {
	// Parent is the image's parent reference (nil: saved without one).
	Parent *ParentRef
	// Missing is set, with Err, when the parent cannot be read (deleted
	// or unreadable); Changed when its manifest is not the one recorded.
	Missing, Changed bool
	Err              error
	// SharedChunks and SharedBytes count the image's chunks that the
	// parent holds too (stored once), NewChunks and NewBytes the others
	// (stored bytes).
	SharedChunks, NewChunks uint64
	SharedBytes, NewBytes   uint64
}

// CompareWithParent counts the chunks img shares with its parent. An image
// without a parent has every chunk new.
func CompareWithParent(ctx context.Context, img *Image) ParentShare {
	r := ParentShare{Parent: img.m.Parent}
	var parent map[[addrSize]byte]bool
	if r.Parent != nil {
		p, err := OpenImage(ctx, r.Parent.URI, "")
		if err != nil {
			r.Missing, r.Err = true, err
		} else {
			r.Changed = p.m.Digest() != r.Parent.ManifestSHA256
			parent = make(map[[addrSize]byte]bool, len(p.chunks))
			for i := range p.chunks {
				parent[p.chunks[i].Sum] = true
			}
			p.Close()
		}
	}
	for i := range img.chunks {
		c := &img.chunks[i]
		if img.m.ContentAddressed && parent[c.Sum] {
			r.SharedChunks++
			r.SharedBytes += uint64(c.StoredLen)
		} else {
			r.NewChunks++
			r.NewBytes += uint64(c.StoredLen)
		}
	}
	return r
}

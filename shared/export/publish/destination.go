package publish

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/filestore"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store/s3store"
)

// CheckURL validates a -publish URL (file://DIR or s3://BUCKET/PREFIX) and
// refuses one at, under or above the snapshot store's URL: the published
// objects must never mix with the snapshots, which are not public and whose
// prefix the loader only reads.
func CheckURL(publishURL, storeURL string) error {
	scheme, rest, ok := strings.Cut(publishURL, "://")
	switch {
	case !ok || rest == "":
		return fmt.Errorf("-publish %q: want file://DIR or s3://BUCKET/PREFIX", publishURL)
	case strings.EqualFold(scheme, "s3"):
		if _, _, err := s3store.ParseURL(publishURL); err != nil {
			return fmt.Errorf("-publish: %w", err)
		}
	case !strings.EqualFold(scheme, "file"):
		return fmt.Errorf("-publish %q: unknown scheme %q; want file://DIR or s3://BUCKET/PREFIX", publishURL, scheme)
	}
	if p, s := normalize(publishURL), normalize(storeURL); storeURL != "" && (within(p, s) || within(s, p)) {
		return fmt.Errorf("-publish %q and -store %q overlap: publish under a prefix of its own, beside the snapshots", publishURL, storeURL)
	}
	return nil
}

// normalize turns a store or destination URL into a comparable path:
// scheme, then a cleaned path (absolute for directories).
func normalize(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	scheme = strings.ToLower(scheme)
	if scheme == "file" {
		if abs, err := filepath.Abs(rest); err == nil {
			rest = abs
		}
		return "file://" + filepath.ToSlash(filepath.Clean(rest))
	}
	return scheme + "://" + strings.Trim(rest, "/")
}

func within(p, base string) bool {
	return p == base || strings.HasPrefix(p, strings.TrimSuffix(base, "/")+"/")
}

// OpenDestination opens the publication destination at rawURL with the
// store backends: the same credentials, addressing and checks as the
// snapshot store (s3store reads PARKING_S3_PATH_STYLE and the SDK's
// endpoint variables).
func OpenDestination(ctx context.Context, rawURL string, opts s3store.Options) (store.Destination, error) {
	if err := CheckURL(rawURL, ""); err != nil {
		return nil, err
	}
	scheme, rest, _ := strings.Cut(rawURL, "://")
	if strings.EqualFold(scheme, "file") {
		d, err := filestore.Open(rest)
		if err != nil {
			return nil, fmt.Errorf("open publication destination %s: %w", rawURL, err)
		}
		return d, nil
	}
	d, err := s3store.Open(ctx, rawURL, opts)
	if err != nil {
		return nil, fmt.Errorf("open publication destination %s: %w", rawURL, err)
	}
	return d, nil
}

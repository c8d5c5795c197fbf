package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/parking-newtaipei/parking-newtaipei/shared/cli"
	"github.com/parking-newtaipei/parking-newtaipei/shared/feed"
	"github.com/parking-newtaipei/parking-newtaipei/shared/queue"
	"github.com/parking-newtaipei/parking-newtaipei/shared/snapshot"
	"github.com/parking-newtaipei/parking-newtaipei/shared/store"
)

// replayChunk is how many snapshots are read (concurrently) before their
// messages are sent, in order, ten per SendMessageBatch.
const replayChunk = 80

// ReplaySummary is what replay prints on stdout.
type ReplaySummary struct {
	Dataset  feed.Dataset `json:"dataset"`
	From     time.Time    `json:"from"`
	To       time.Time    `json:"to"`
	Listed   int          `json:"listed"`
	Enqueued int          `json:"enqueued"`
	Failed   int          `json:"failed"`
	DryRun   bool         `json:"dry_run,omitempty"`
	// LastKey is the last key enqueued; ResumeFrom its fetch time, the -from
	// that continues an interrupted replay (the loader's ledger acknowledges
	// the few messages sent twice).
	LastKey    string    `json:"last_key,omitempty"`
	ResumeFrom time.Time `json:"resume_from,omitzero"`
}

func runReplay(ctx context.Context, f *cli.Flags, args []string) int {
	var (
		cfg                   Config
		d                     feed.Dataset
		fromS, toS            string
		dryRun                bool
		concurrency, logEvery int
	)
	cfg.bind(f)
	f.Dataset(&d, "dataset to replay: `lots|availability`")
	f.String(&fromS, "from", "", "", "first fetch time (inclusive): RFC 3339, or a Taipei date or minute")
	f.String(&toS, "to", "", "", "end of the range (exclusive), same forms (default: now)")
	f.Bool(&dryRun, "dry-run", "", false, "list the snapshots that would be enqueued; read and send nothing")
	f.Int(&concurrency, "concurrency", "", 8, "concurrent snapshot reads")
	f.Int(&logEvery, "log-every", "", 500, "log progress every this many messages")
	f.Require("dataset", "from")
	log, err := f.Start(args, &cfg)
	if err != nil {
		return f.UsageError(err)
	}
	from, to, err := cli.ParseRange(fromS, toS, time.Now())
	if err != nil {
		return f.UsageError(err)
	}
	if concurrency < 1 || logEvery < 1 {
		return f.UsageError(errors.New("-concurrency and -log-every must be at least 1"))
	}

	st, err := cli.OpenStore(ctx, cfg.Store, cli.BackendOptions{Logger: log})
	if err != nil {
		log.Error("replay", "err", err)
		return cli.ExitError
	}
	r := replayer{store: st, log: log, concurrency: concurrency, logEvery: logEvery,
		sum: ReplaySummary{Dataset: d, From: from, To: to, DryRun: dryRun}}
	if dryRun {
		err = snapshot.List(ctx, st, []feed.Dataset{d}, from, to, func(l snapshot.Listed) error {
			r.sum.Listed++
			fmt.Fprintf(f.Stdout, "%s\t%d\t%s\n", l.Key, l.Size, l.Info.FetchedAt.Format(time.RFC3339))
			return nil
		})
	} else {
		q, qerr := cli.OpenQueue(ctx, cfg.Queue, cli.BackendOptions{Logger: log})
		if qerr != nil {
			log.Error("replay", "err", qerr)
			return cli.ExitError
		}
		defer q.Close()
		r.queue = q
		err = r.run(ctx, d, from, to)
	}
	cli.PrintJSON(f.Stdout, r.sum)
	switch {
	case err != nil:
		log.Error("replay stopped", "err", err, "enqueued", r.sum.Enqueued, "last_key", r.sum.LastKey,
			"resume_from", r.sum.ResumeFrom)
		return cli.ExitError
	case r.sum.Failed > 0:
		log.Error("replay finished with unreadable snapshots (not enqueued)", "failed", r.sum.Failed, "enqueued", r.sum.Enqueued)
		return cli.ExitError
	}
	log.Info("replay finished", "listed", r.sum.Listed, "enqueued", r.sum.Enqueued, "last_key", r.sum.LastKey, "dry_run", dryRun)
	return cli.ExitOK
}

// replayer enqueues stored snapshots for the running loader. It never opens
// the database: the loader stays the only writer.
type replayer struct {
	store       store.Store
	queue       queue.Queue
	log         *slog.Logger
	concurrency int
	logEvery    int
	sum         ReplaySummary
}

func (r *replayer) run(ctx context.Context, d feed.Dataset, from, to time.Time) error {
	var chunk []snapshot.Listed
	err := snapshot.List(ctx, r.store, []feed.Dataset{d}, from, to, func(l snapshot.Listed) error {
		r.sum.Listed++
		chunk = append(chunk, l)
		if len(chunk) < replayChunk {
			return nil
		}
		err := r.send(ctx, chunk)
		chunk = chunk[:0]
		return err
	})
	if err != nil {
		return err
	}
	return r.send(ctx, chunk)
}

// send reads a chunk of snapshots concurrently, then enqueues their
// messages in key order, ten per call.
func (r *replayer) send(ctx context.Context, chunk []snapshot.Listed) error {
	bodies := make([][]byte, len(chunk))
	errs := make([]error, len(chunk))
	var g errgroup.Group
	g.SetLimit(r.concurrency)
	for i, l := range chunk {
		g.Go(func() error {
			bodies[i], errs[i] = r.message(ctx, l)
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	var batch [][]byte
	var keys []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := r.queue.Send(ctx, batch...); err != nil {
			return fmt.Errorf("enqueue on %s: %w", r.queue, err)
		}
		before := r.sum.Enqueued
		r.sum.Enqueued += len(batch)
		r.sum.LastKey = keys[len(keys)-1]
		if info, err := snapshot.ParseKey(r.sum.LastKey); err == nil {
			r.sum.ResumeFrom = info.FetchedAt
		}
		if r.sum.Enqueued/r.logEvery > before/r.logEvery {
			r.log.Info("replay progress", "enqueued", r.sum.Enqueued, "listed", r.sum.Listed, "last_key", r.sum.LastKey)
		}
		batch, keys = batch[:0], keys[:0]
		return nil
	}
	for i, l := range chunk {
		if errs[i] != nil {
			r.sum.Failed++
			r.log.Error("snapshot not enqueued", "key", l.Key, "err", errs[i])
			continue
		}
		batch, keys = append(batch, bodies[i]), append(keys, l.Key)
		if len(batch) == 10 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// message reads and verifies one snapshot and builds the message the
// extractor sent (or would have sent) for it.
func (r *replayer) message(ctx context.Context, l snapshot.Listed) ([]byte, error) {
	in, err := snapshot.Read(ctx, r.store, l.Ref(), snapshot.ReadOptions{})
	if err != nil {
		return nil, err
	}
	loc := r.store.Locate(l.Key)
	return queue.EncodeMessage(queue.Message{
		Version: queue.MessageVersion, Dataset: in.Dataset, Bucket: loc.Bucket, Key: loc.Key,
		SHA256: in.SHA256, Size: in.Size, FetchedAt: in.FetchedAt, Rows: len(in.Lots) + len(in.Availability),
	})
}

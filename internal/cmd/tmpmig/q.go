package main

import (
	"database/sql"
	"fmt"
	"time"
)

func timeQueries(path string, qs ...string) {
	db, err := sql.Open("sqlite", path)
	if err != nil {
		panic(err)
	}
	db.SetMaxOpenConns(1)
	for _, q := range qs {
		t0 := time.Now()
		rows, err := db.Query(q)
		if err != nil {
			panic(err)
		}
		n := 0
		var last []any
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			rows.Scan(ptrs...)
			last = vals
			n++
		}
		rows.Close()
		fmt.Printf("%s\n  -> %d rows, last %v, %s\n", q, n, last, time.Since(t0))
	}
}

"""What scanning once buys a filtered, sorted page with its count on SQLite.

Builds the benchmark's 10k posts (bench/src/seed.rs) in a temporary SQLite file, with and
without the index on `score`, and times the `list-filter` scenario's statements three ways:
the count and the page as two statements (what Manifold and the baseline run), the page
with a window count over every column (one scan), and a window count over the keys only,
joined back to the page's rows (one scan, narrow). Prints microseconds per request, the
best of five rounds. Run: python3 bench/scan_once.py
"""

import os
import sqlite3
import tempfile
import time

WHERE = "status = ? AND score >= ?"
PARAMS = ("published", 900)
COLUMNS = 'id, title, body, score, status, "createdAt"'
WAYS = {
    "count, then page (two scans)": [
        f"SELECT COUNT(*) FROM posts WHERE {WHERE}",
        f"SELECT {COLUMNS} FROM posts WHERE {WHERE} ORDER BY score DESC, id LIMIT 20",
    ],
    "page with COUNT(*) OVER () (one scan)": [
        f"SELECT {COLUMNS}, COUNT(*) OVER () FROM posts WHERE {WHERE} "
        "ORDER BY score DESC, id LIMIT 20",
    ],
    "keys with COUNT(*) OVER (), joined (one narrow scan)": [
        f"WITH m AS (SELECT id, score, COUNT(*) OVER () AS n FROM posts WHERE {WHERE} "
        "ORDER BY score DESC, id LIMIT 20) "
        'SELECT p.id, p.title, p.body, p.score, p.status, p."createdAt", m.n '
        "FROM m JOIN posts p ON p.id = m.id ORDER BY m.score DESC, m.id",
    ],
}


def build(path, indexed):
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT, "
        'score INTEGER NOT NULL, status TEXT NOT NULL, "createdAt" TEXT NOT NULL)'
    )
    statuses = ["draft", "published", "archived"]
    db.executemany(
        "INSERT INTO posts VALUES (?, ?, ?, ?, ?, ?)",
        [
            (i, f"Post number {i}", "Lorem ipsum dolor sit amet. " * 4 + str(i),
             i * 7919 % 1000, statuses[i % 3], "2024-01-01T00:00:00Z")
            for i in range(1, 10_001)
        ],
    )
    if indexed:
        db.execute("CREATE INDEX posts_score_idx ON posts (score)")
    db.commit()
    db.execute("ANALYZE")
    return db


def per_request(db, statements, n=2000):
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            for sql in statements:
                db.execute(sql, PARAMS).fetchall()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def main():
    with tempfile.TemporaryDirectory() as dir:
        for indexed in (True, False):
            db = build(os.path.join(dir, f"posts{indexed}.db"), indexed)
            counts = {db.execute(s[-1], PARAMS).fetchall()[0][-1] for s in list(WAYS.values())[1:]}
            assert counts == {db.execute(WAYS["count, then page (two scans)"][0], PARAMS).fetchone()[0]}
            print("with the index on score" if indexed else "without an index")
            for way, statements in WAYS.items():
                print(f"  {way}: {per_request(db, statements):.0f} µs")
            db.close()


if __name__ == "__main__":
    main()

"""Pitchfork-shaped catalogs of any size, written in the Kaggle schema, for benchmarks and tests.

The tables are the built-in demo's generator (`demo_data.demo_tables`) at another size: Pitchfork's
genre frequencies with about one artist in six without a genre, mean scores spread like Pitchfork's,
1 + Poisson(1.2) reviews an artist (each credited to its one artist in `artists`), labels and
release years. They are written as `database.sqlite` or as a folder of CSVs, and read back by the
project's one reader, as a user's data would be.

    python benchmarks/synthetic_catalog.py 100000 /tmp/catalog-100k            # database.sqlite
    python benchmarks/synthetic_catalog.py 100000 /tmp/catalog-100k --csv
        # reviews.csv, artists.csv, ...
"""
import argparse
import os
import sqlite3
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import demo_data  # noqa: E402

# The Kaggle file's column types, so the SQLite file looks as Kaggle ships it.
SQL_TYPES = {"reviewid": "INTEGER", "artist": "TEXT", "score": "REAL", "genre": "TEXT",
             "label": "TEXT", "year": "INTEGER"}


def write_tables(tables, folder, csv=False, only=None):
    """Write `tables` ({name: frame}) into `folder`, as database.sqlite or CSVs; `only` names a
    subset. Returns the path to give --data."""
    os.makedirs(folder, exist_ok=True)
    names = [name for name in tables if only is None or name in only]
    if csv:
        for name in names:
            # NULL as a bare NA, as the Kaggle export and R write it.
            tables[name].to_csv(os.path.join(folder, f"{name}.csv"), index=False, na_rep="NA")
        return folder
    path = os.path.join(folder, "database.sqlite")
    if os.path.exists(path):
        os.remove(path)
    with sqlite3.connect(path) as connection:
        for name in names:
            frame = tables[name]
            columns = ", ".join(f"{column} {SQL_TYPES[column]}" for column in frame.columns)
            connection.execute(f"CREATE TABLE {name} ({columns})")
            connection.executemany(
                f"INSERT INTO {name} VALUES ({', '.join('?' * len(frame.columns))})",
                frame.astype(object).where(frame.notna(), None).itertuples(index=False))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("artists", type=int)
    parser.add_argument("folder")
    parser.add_argument("--csv", action="store_true",
                        help="write CSV files instead of database.sqlite")
    parser.add_argument("--seed", type=int, default=2016)
    args = parser.parse_args(argv)
    path = write_tables(demo_data.demo_tables(args.artists, args.seed), args.folder, csv=args.csv)
    print(path)


if __name__ == "__main__":
    main()

"""psycopg 3 clients sharing small pools, each with its own prepared
statements under the names psycopg gives them (_pg3_0, _pg3_1, ... per
connection, so one name means different SQL in different clients), in
plain and pipeline mode. Exits non-zero on the first wrong answer.

usage: psycopg_prepared.py CONNINFO CLIENTS ROUNDS
"""

import asyncio
import random
import sys

import psycopg


async def client(conninfo, i, rounds):
    async with await psycopg.AsyncConnection.connect(
        conninfo, autocommit=True, prepare_threshold=0
    ) as conn:
        queries = [f"SELECT {i} * 1000 + %s::int, 'c{i}q{k}'" for k in range(4)]
        random.Random(i).shuffle(queries)
        for r in range(rounds):
            for query in queries:
                async with conn.cursor() as cur:
                    await cur.execute(query, (r,))
                    value, tag = await cur.fetchone()
                    if value != i * 1000 + r or not tag.startswith(f"c{i}q"):
                        raise AssertionError(f"client {i}: {query!r} gave {value}, {tag}")
            async with conn.pipeline():
                async with conn.cursor() as cur:
                    params = [(x,) for x in range(5)]
                    await cur.executemany(f"SELECT %s::int + {i}", params, returning=True)
                    got = []
                    while True:
                        got.append((await cur.fetchone())[0])
                        if not cur.nextset():
                            break
                    if got != [x + i for x in range(5)]:
                        raise AssertionError(f"client {i}: pipeline gave {got}")


async def main():
    conninfo, clients, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    await asyncio.gather(*(client(conninfo, i, rounds) for i in range(clients)))
    print(f"ok: {clients} clients x {rounds} rounds, psycopg {psycopg.__version__}")


asyncio.run(main())

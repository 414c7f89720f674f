-- setup-role.sql: create the read-only role that bulkhead-postgres logs in as.
--
-- Run it with psql as a superuser (or as the owner of the schemas, holding CREATEROLE), connected
-- to the database the server is going to read:
--
--     psql -X -d mydb -v schemas='public, sales' -f setup-role.sql
--
-- psql variables (-v name=value); every one has a default:
--
--     role               bulkhead_reader       the role to create, or to bring up to date if it exists
--     password           (psql asks for it)    its password; when not given, psql's \password asks for
--                                              it twice without echo and sends only its SCRAM hash, so
--                                              it appears in no process list, shell history or server log
--     database           the connected one     the database the role may connect to
--     schemas            public                the schemas the role may read, as a comma-separated SQL
--                                              list: quote mixed-case names ('"Sales", public')
--     owner              the connected user    the role that creates tables in those schemas: tables it
--                                              creates later become readable too
--     statement_timeout  30s                   the longest one statement of the role may run
--     revoke_temp        off                   on: also take the right to create temporary tables in this
--                                              database from PUBLIC (read the note at that step first)
--
-- It is safe to run again: the role is created only when missing, everything else is re-applied.
-- Run it again with a longer list of schemas to let the role read more.
--
-- The role is one wall of several: bulkhead-postgres also runs every query in a READ ONLY
-- transaction and rejects writing statements before they reach the database.

-- Stop at the first error instead of carrying on with a half-made role.
\set ON_ERROR_STOP on

-- The defaults of the variables above, for those not given with -v.
\if :{?role}
\else
    \set role bulkhead_reader
\endif
\if :{?database}
\else
    \set database :DBNAME
\endif
\if :{?schemas}
\else
    \set schemas public
\endif
\if :{?owner}
\else
    \set owner :USER
\endif
\if :{?statement_timeout}
\else
    \set statement_timeout 30s
\endif
\if :{?revoke_temp}
\else
    \set revoke_temp off
\endif

-- 1. The role, created only if it does not exist yet.
-- psql variables do not reach inside the $$-quoted block, so the name travels in a session setting.
SET bulkhead.role = :'role';
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = current_setting('bulkhead.role')) THEN
        -- Created without any right; the next statements say exactly what it may do.
        EXECUTE format('CREATE ROLE %I', current_setting('bulkhead.role'));
    END IF;
END
$$;
-- The session setting has done its job.
RESET bulkhead.role;

-- 2. What the role is: a plain login, with none of the powers that bypass permission checks.
ALTER ROLE :"role" WITH
    LOGIN          -- it may log in: the server connects as this role
    NOSUPERUSER    -- a superuser skips every permission check, so never
    NOCREATEDB     -- it may not create databases
    NOCREATEROLE   -- it may not create, change or drop roles
    NOREPLICATION  -- it may not stream a copy of the whole cluster
    NOBYPASSRLS;   -- row-level security policies apply to it like to anyone

-- 3. Its password: the given one, or typed in at psql's prompt.
\if :{?password}
-- Sent in the statement: a server with log_statement = 'ddl' or 'all' writes it to its log.
ALTER ROLE :"role" WITH PASSWORD :'password';
\else
-- Asks twice, without echo, and sends only the hash.
\password :"role"
\endif

-- 4. Settings that apply to every session of the role.
-- Transactions start read-only unless a session asks otherwise; the privileges below are what
-- really keep it from writing, this is the second line.
ALTER ROLE :"role" SET default_transaction_read_only = on;
-- No statement of the role runs longer than this.
ALTER ROLE :"role" SET statement_timeout = :'statement_timeout';
-- A session that leaves a transaction open and idle is cut after a minute (it would hold locks).
ALTER ROLE :"role" SET idle_in_transaction_session_timeout = '1min';

-- 5. Where it may go: this database, and inside it only the chosen schemas.
-- Lets the role connect to the database (PUBLIC usually may too; this makes it explicit).
GRANT CONNECT ON DATABASE :"database" TO :"role";
-- Lets it see the objects in the chosen schemas; reading them needs the SELECT below.
GRANT USAGE ON SCHEMA :schemas TO :"role";

-- 6. What it may read: every table, view, materialized view and foreign table there ...
GRANT SELECT ON ALL TABLES IN SCHEMA :schemas TO :"role";
-- ... and every one the owner creates there later (run this step again for other owners).
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA :schemas GRANT SELECT ON TABLES TO :"role";

-- 7. What it may not do: create objects in the public schema.
-- Before PostgreSQL 15 every role (PUBLIC) could create tables in `public`; take that away.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- And from the role itself, in case someone granted it directly.
REVOKE CREATE ON SCHEMA public FROM :"role";

-- 8. Temporary tables (only with -v revoke_temp=on).
-- Every role may create temporary tables through PUBLIC, and PostgreSQL cannot take that right from
-- one role alone: it must be revoked from PUBLIC, which affects every role that has not been
-- granted TEMPORARY on this database itself. Grant it back to those that need it:
--     GRANT TEMPORARY ON DATABASE mydb TO app_role;
-- Left as is, the role can create one only in a transaction it explicitly makes read-write,
-- which bulkhead-postgres never does.
\if :revoke_temp
REVOKE TEMPORARY ON DATABASE :"database" FROM PUBLIC;
\endif

-- 9. Functions: nothing to do.
-- PUBLIC may execute most built-in functions, which only compute. The dangerous ones are
-- superuser-only or granted only through predefined roles this role is not a member of:
-- reading server files (pg_read_file, pg_ls_dir: pg_read_server_files), writing them
-- (lo_export, COPY TO a file: pg_write_server_files), running programs (COPY ... PROGRAM:
-- pg_execute_server_program), signalling other roles' sessions (pg_signal_backend). Keep the role
-- out of those, and of pg_read_all_data, which would let it read every schema. Check the functions
-- of extensions installed in the chosen schemas (dblink, for one) before exposing them.

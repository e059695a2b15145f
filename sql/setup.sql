-- The extension installs its objects, and the install script follows the
-- house rules for extension scripts.
CREATE EXTENSION leader;

SELECT extname, extversion, extrelocatable FROM pg_extension WHERE extname = 'leader';

-- Every function, with its arguments and defaults; none is STRICT (a NULL
-- argument must raise an error, never return NULL silently).
SELECT p.oid::regprocedure AS function,
       pg_get_function_arguments(p.oid) AS arguments,
       p.prorettype::regtype AS returns,
       p.proisstrict AS strict,
       p.prosecdef AS security_definer
FROM pg_proc p
JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                 AND d.refclassid = 'pg_extension'::regclass
JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'leader'
ORDER BY 1::text;

-- The table and the view.
\d leader_lease
\d leader_status

-- The install script has no CREATE OR REPLACE or IF NOT EXISTS, qualifies
-- what it creates with @extschema@, and starts with the \echo guard.
SELECT script ~ '^/\*[^\n]*\*/\s*\\echo Use "CREATE EXTENSION leader"' AS has_echo_guard,
       script !~* 'create\s+or\s+replace' AS no_create_or_replace,
       script !~* 'if\s+not\s+exists' AS no_if_not_exists,
       script !~* 'create\s+(table|function|view)\s+(?!@extschema@\.)' AS creates_qualified
FROM (SELECT pg_read_file(setting || '/extension/leader--1.0.sql') AS script
      FROM pg_config WHERE name = 'SHAREDIR') s;

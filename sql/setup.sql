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

-- The install and upgrade scripts have no CREATE OR REPLACE or IF NOT
-- EXISTS, qualify what they create, alter, drop or index with @extschema@,
-- and start with the \echo guard.
SELECT file,
       script ~ '^/\*[^\n]*\*/\s*\\echo Use "(CREATE|ALTER) EXTENSION leader' AS has_echo_guard,
       script !~* 'create\s+or\s+replace' AS no_create_or_replace,
       script !~* 'if\s+not\s+exists' AS no_if_not_exists,
       script !~* '(create|alter|drop)\s+(table|function|view)\s+(?!@extschema@\.)'
           AND script !~* 'create\s+index\s+\w+\s+on\s+(?!@extschema@\.)' AS qualified
FROM (SELECT file, pg_read_file(setting || '/extension/' || file) AS script
      FROM pg_config, unnest(ARRAY['leader--1.0.sql', 'leader--1.0--1.1.sql']) AS file
      WHERE name = 'SHAREDIR') s
ORDER BY file;

-- There is no leader--1.1.sql: version 1.1 is installed as 1.0 and the
-- upgrade, so that each object has one definition.
SELECT pg_stat_file(setting || '/extension/leader--1.1.sql', true) IS NULL AS no_1_1_script
FROM pg_config WHERE name = 'SHAREDIR';
SELECT pg_catalog.array_agg(source || '->' || target ORDER BY source, target) AS paths
FROM pg_extension_update_paths('leader') WHERE path IS NOT NULL;
SELECT name, version FROM pg_available_extension_versions WHERE name = 'leader' ORDER BY version;

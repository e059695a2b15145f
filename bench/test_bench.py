"""
bench/test_bench.py: checks of the benchmark's own machinery, without running
a benchmark: the installation that PG_CONFIG names.

Run: /usr/bin/python3 -m unittest discover -s bench
(Debian's python3, which has psycopg, as run.sh uses; as any user: the check
of run.sh's PG_CONFIG needs root, as run.sh does, and is skipped otherwise)
"""
import os
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class InstallationTest(unittest.TestCase):

    def test_pg_config_names_the_binaries(self):
        """cluster.py runs the binaries of PG_CONFIG's installation, not PATH's."""
        with tempfile.TemporaryDirectory() as tmp:
            fake = os.path.join(tmp, "pg_config")
            with open(fake, "w") as f:
                f.write('#!/bin/sh\n[ "$1" = --bindir ] && echo /private/pg/bin\n')
            os.chmod(fake, stat.S_IRWXU)
            done = subprocess.run(
                [sys.executable, "-c", "import cluster; print(cluster.pg_bin('postgres'))"],
                cwd=HERE, env=dict(os.environ, PG_CONFIG=fake), capture_output=True,
                text=True, check=True)
        self.assertEqual(done.stdout.strip(), "/private/pg/bin/postgres")

    @unittest.skipUnless(os.geteuid() == 0, "run.sh runs as root")
    def test_run_sh_rejects_an_unusable_pg_config(self):
        done = subprocess.run(["bash", os.path.join(HERE, "run.sh"), "--quick"],
                              env=dict(os.environ, PG_CONFIG="/nonexistent/pg_config"),
                              capture_output=True, text=True)
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertIn("bench/run.sh: no working pg_config (set PG_CONFIG", done.stderr)


if __name__ == "__main__":
    unittest.main()

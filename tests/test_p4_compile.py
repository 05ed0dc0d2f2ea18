"""Every program in p4src/ compiles for Tofino 1 with p4c-barefoot, and the committed P4Info is the
compiler's (harness/p4c.py; regenerate with scripts/p4-compile.sh). "Compiles" includes fitting the
12 MAU stages: this back end places what does not fit into stages 12, 13, ... without an error.

The compiler: $P4C_BAREFOOT, `p4c-barefoot` on the PATH, or ../shared/tools/p4c/p4c-barefoot beside
the repository (CI). Without one the test skips and says so. A compile takes seconds.
"""

from __future__ import annotations

import pytest

from harness import p4c

COMPILER = p4c.find_compiler()
pytestmark = pytest.mark.skipif(
    COMPILER is None,
    reason="p4c-barefoot not found ($P4C_BAREFOOT, PATH, ../shared/tools/p4c/p4c-barefoot)")


def test_every_program_in_p4src_is_covered():
    assert sorted(p.stem for p in p4c.P4SRC.glob("*.p4")) == sorted(p4c.PROGRAMS)


@pytest.mark.parametrize("program", p4c.PROGRAMS)
def test_compiles_for_tofino1_and_p4info_is_the_committed_one(program, tmp_path):
    res = p4c.compile_program(program, tmp_path / program, compiler=COMPILER)
    assert res.returncode == 0 and res.errors == 0, res.output
    assert res.unsupported == [], "\n".join(res.unsupported)
    assert res.stages is not None and res.stages <= p4c.STAGES, f"placed in {res.stages} MAU stages"
    emitted = p4c.normalized_p4info(res.p4info.read_text())
    committed = p4c.normalized_p4info(p4c.committed_p4info(program).read_text())
    assert emitted == committed, f"p4src/{program}.p4info.txtpb is stale: run scripts/p4-compile.sh"

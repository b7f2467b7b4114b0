"""Build a database: plan generations (prompts x generators x steps/CFG/size) and run them with
diffusers into the AIGIQA-20K release layout (read back with ``load_database("generated")``)."""

from aigiqa.generate.config import GeneratorSpec, read_generators, read_prompts
from aigiqa.generate.plan import make_plan, read_plan, summarize_plan, write_plan
from aigiqa.generate.run import RunResult, run_plan

__all__ = ["GeneratorSpec", "RunResult", "make_plan", "read_generators", "read_plan",
           "read_prompts", "run_plan", "summarize_plan", "write_plan"]

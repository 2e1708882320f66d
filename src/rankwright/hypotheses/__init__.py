"""The dual-source hypothesis engine (DESIGN.md `hypotheses`).

- `knowledge`: the offline knowledge base of ranking techniques (`techniques.yaml`);
- `insights`: what finished comparisons taught, and the prior they give a technique in a
  new context;
- `diagnosis`: reading a baseline run's curves and metrics;
- `llm`: the optional LLM source (OpenAI-compatible or Anthropic);
- `engine`: scoring and ranking every hypothesis, with its reasons.
"""

from rankwright.hypotheses.knowledge import (
    CATEGORIES,
    MODEL_FAMILIES,
    SIGNALS,
    KnobChange,
    KnowledgeBase,
    KnowledgeError,
    Prior,
    Technique,
    knob_values,
    load_knowledge_base,
    parse_knowledge_base,
)

__all__ = [
    "CATEGORIES",
    "MODEL_FAMILIES",
    "SIGNALS",
    "KnobChange",
    "KnowledgeBase",
    "KnowledgeError",
    "Prior",
    "Technique",
    "knob_values",
    "load_knowledge_base",
    "parse_knowledge_base",
]

"""Hypotheses for the research agent: an offline knowledge base of ranking-model techniques."""

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

"""How a benchmark question is shown to routers as a user instruction."""

from __future__ import annotations

import string

from .routers import Instruction
from .zoo import Question


def question_text(question: Question, rotation: int = 0) -> str:
    """The question, then its options lettered (A), (B), ...; ``rotation`` shifts which option gets which letter.

    Rotating options is a training augmentation for hard multiple-choice items: the router should not tie a
    verdict to where the right answer sits.
    """
    if not question.choices:
        return question.text
    choices = list(question.choices)
    if rotation:
        shift = rotation % len(choices)
        choices = choices[shift:] + choices[:shift]
    letters = string.ascii_uppercase
    options = " ".join(f"({letters[i]}) {choice}" for i, choice in enumerate(choices[:len(letters)]))
    return f"{question.text}\nOptions: {options}"


def question_instruction(question: Question) -> Instruction:
    return Instruction(text=question_text(question), image=question.image)

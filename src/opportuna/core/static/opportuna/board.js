// Pipeline board: drag a card onto another column to move it. The only hand-written
// script of the app. It posts the move with htmx (the CSRF token comes from the body's
// hx-headers); the server answers with the card in its new column and fresh totals.
// Without JavaScript, each card's "Move" form does the same.
(function () {
  "use strict";
  var dragged = null;

  function element(target) {
    // Some browsers report the text node under the pointer.
    return target && target.nodeType === 3 ? target.parentElement : target;
  }

  function columnAt(target) {
    var el = element(target);
    return el && el.closest ? el.closest(".column[data-step]") : null;
  }

  function clearTargets() {
    document.querySelectorAll(".column.drop-target").forEach(function (column) {
      column.classList.remove("drop-target");
    });
  }

  document.addEventListener("dragstart", function (event) {
    var el = element(event.target);
    var card = el && el.closest ? el.closest(".opp-card[draggable=true]") : null;
    if (!card) return;
    dragged = card;
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.id);
  });

  document.addEventListener("dragover", function (event) {
    var column = dragged && columnAt(event.target);
    if (!column) return;
    event.preventDefault();
    if (!column.classList.contains("drop-target")) {
      clearTargets();
      column.classList.add("drop-target");
    }
  });

  document.addEventListener("drop", function (event) {
    var column = dragged && columnAt(event.target);
    if (!column) return;
    event.preventDefault();
    clearTargets();
    var card = dragged;
    dragged = null;
    if (column.dataset.step === card.dataset.step) return;
    card.setAttribute("aria-busy", "true");
    htmx.ajax("POST", card.dataset.moveUrl, {
      source: card,
      target: card,
      swap: "outerHTML",
      values: { step: column.dataset.step },
    });
  });

  document.addEventListener("dragend", function () {
    dragged = null;
    clearTargets();
  });

  // A refused move (403, 404) leaves the card where it was; say so.
  document.body.addEventListener("htmx:responseError", function (event) {
    var card = event.detail.elt;
    if (card && card.classList && card.classList.contains("opp-card")) {
      card.removeAttribute("aria-busy");
      var board = card.closest(".board");
      window.alert((board && board.dataset.refused) || "This card could not be moved.");
    }
  });
})();

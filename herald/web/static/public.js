// The unsubscribe page asks nothing more: it posts its own form at once (RFC 8058's
// one-click, for a person); without scripts its button does the same.
document.getElementById("unsubscribe").submit();

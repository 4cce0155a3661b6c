"""Rewording and deleting comments: who may, what the log keeps, what stays hidden."""

import pytest
from django.core.exceptions import PermissionDenied

from opportuna.accounts.models import VisibilityPolicy
from opportuna.accounts.services import account_update
from opportuna.sales.errors import SalesRuleError
from opportuna.sales.models import Comment, EventKind, Opportunity, OpportunityEvent
from opportuna.sales.services import comment_add, comment_delete, comment_edit
from tests.factories import OpportunityFactory, make_cast

pytestmark = pytest.mark.django_db


@pytest.fixture
def cast():
    return make_cast()


@pytest.fixture
def opp(cast):
    return OpportunityFactory(owner=cast.owner, pipeline=cast.pipeline)


@pytest.fixture
def teammate_comment(cast, opp):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    return comment_add(opportunity=opp, actor=cast.teammate, body="Their budget is frozen")


def test_the_author_rewords_a_comment_and_the_log_keeps_the_old_words(cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Call on Monday")
    edited = comment_edit(comment=comment, actor=cast.owner, body="  Call on Tuesday ")
    comment.refresh_from_db()
    assert (comment.body, edited.body) == ("Call on Tuesday", "Call on Tuesday")
    assert comment.edited_at is not None
    event = OpportunityEvent.objects.get(opportunity=opp, kind=EventKind.COMMENT_EDITED)
    assert event.actor == cast.owner
    assert event.changes == {"body": ["Call on Monday", "Call on Tuesday"]}
    assert event.data == {"comment": comment.pk}


def test_the_same_words_change_nothing(cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Same")
    comment_edit(comment=comment, actor=cast.owner, body="Same ")
    comment.refresh_from_db()
    assert comment.edited_at is None
    assert not OpportunityEvent.objects.filter(kind=EventKind.COMMENT_EDITED).exists()


def test_an_empty_comment_is_refused(cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Keep me")
    with pytest.raises(SalesRuleError) as refused:
        comment_edit(comment=comment, actor=cast.owner, body="   ")
    assert refused.value.field == "body"
    comment.refresh_from_db()
    assert comment.body == "Keep me"


def test_only_the_author_may_reword_not_even_the_owner_or_an_admin(cast, opp, teammate_comment):
    for someone in (cast.owner, cast.manager, cast.admin):
        with pytest.raises(PermissionDenied):
            comment_edit(comment=teammate_comment, actor=someone, body="Rewritten")
    teammate_comment.refresh_from_db()
    assert teammate_comment.body == "Their budget is frozen"


def test_the_author_deletes_and_the_log_keeps_no_words(cast, opp, teammate_comment):
    comment_delete(comment=teammate_comment, actor=cast.teammate)
    assert not Comment.objects.filter(pk=teammate_comment.pk).exists()
    event = OpportunityEvent.objects.get(opportunity=opp, kind=EventKind.COMMENT_DELETED)
    assert event.actor == cast.teammate
    assert event.data == {
        "comment": teammate_comment.pk,
        "author": cast.teammate.pk,
        "pinned": False,
    }
    assert "budget" not in str(event.changes) + str(event.data)


@pytest.mark.parametrize("role", ["owner", "manager", "admin"])
def test_who_may_edit_the_opportunity_may_delete_others_comments(cast, opp, teammate_comment, role):
    comment_delete(comment=teammate_comment, actor=getattr(cast, role))
    assert not Comment.objects.filter(pk=teammate_comment.pk).exists()


def test_a_teammate_may_not_delete_the_owners_comment(cast, opp):
    account_update(actor=cast.admin, visibility=VisibilityPolicy.TEAM)
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Owner's note")
    with pytest.raises(PermissionDenied):
        comment_delete(comment=comment, actor=cast.teammate)
    assert Comment.objects.filter(pk=comment.pk).exists()


def test_a_comment_out_of_sight_does_not_exist(cast, opp):
    comment = comment_add(opportunity=opp, actor=cast.owner, body="Private")
    with pytest.raises(Opportunity.DoesNotExist):
        comment_delete(comment=comment, actor=cast.other)
    with pytest.raises(Opportunity.DoesNotExist):
        comment_edit(comment=comment, actor=cast.other, body="Mine now")
    assert Comment.objects.get(pk=comment.pk).body == "Private"
